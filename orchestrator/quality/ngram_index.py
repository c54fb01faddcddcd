"""Hashed token n-gram index of benchmark items, and matching a text against it.

Tokens are runs of letters or of digits (punctuation, LaTeX markup and spaces only separate
them). Two token streams are derived from a text:

- the *long* stream (the n-gram rule): letters lower-cased; with ``mask_names`` every word that
  starts with a capital becomes one placeholder (renaming people or places does not break
  n-grams: measured, without it 133 of 1,319 GSM8K-test questions with names swapped share no
  13-gram with the original); numbers dropped with ``strip_numbers`` (else kept);
- the *short* stream, for items whose long stream has fewer than ``n`` tokens (19% of MATH
  test under the TinyGSM rule, e.g. "Compute $\\dbinom{12}{9}$."): letters lower-cased, every
  number one placeholder, nothing masked. Such an item matches a text that contains its whole
  short stream contiguously, so changing its numbers or appending text still matches, while a
  bare word pair such as "compute dbinom" never matches on its own.

An n-gram (or a whole short stream) is a 64-bit polynomial hash of its token hashes (blake2b),
salted by length; the index stores sorted hashes and, per hash, the first benchmark item that
has it (int32), so it pickles to ~12 bytes an n-gram. ``match_many`` is vectorised over a
batch of texts (prefix sums give every window of every needed length at once; one sorted
search); only tokenising is per text. This module does no I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from orchestrator.quality.minhash import mix64

_TOKEN = re.compile(r"[^\W\d_]+|\d+")
_P = 0x9E3779B97F4A7C15 | 1
_P_INV = pow(_P, -1, 2**64)
_CAP, _NUM = "\x01cap", "\x01num"


@dataclass(frozen=True)
class Rule:
    n: int = 13
    strip_numbers: bool = True
    mask_names: bool = True


@dataclass
class Match:
    item: str  # "source:item id"
    ngram: str  # the matching span of the checked text, as written there


@lru_cache(maxsize=1 << 18)
def _token_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


class _Powers:
    """P^i and P^-i mod 2^64 for i < size, grown on demand."""

    def __init__(self) -> None:
        self.pos = self.inv = np.ones(1, dtype=np.uint64)

    def get(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if size > len(self.pos):
            size = max(size, 2 * len(self.pos))
            self.pos = np.ones(size, dtype=np.uint64)
            self.pos[1:] = np.cumprod(np.full(size - 1, _P, dtype=np.uint64))
            self.inv = np.ones(size, dtype=np.uint64)
            self.inv[1:] = np.cumprod(np.full(size - 1, _P_INV, dtype=np.uint64))
        return self.pos, self.inv


_POWERS = _Powers()


def streams(text: str, rule: Rule) -> tuple[list[str], list[str]]:
    """(long stream, short stream) of ``text``."""
    tokens = _TOKEN.findall(text)
    short = [_NUM if t.isdigit() else t.lower() for t in tokens]
    if rule.strip_numbers:
        tokens = [t for t in tokens if not t.isdigit()]
    mask = rule.mask_names
    return [_CAP if mask and t[0].isupper() else t.lower() for t in tokens], short


def _long_spans(text: str, rule: Rule) -> list[tuple[int, int]]:
    """Character span of each long-stream token (only needed to report a match)."""
    return [
        m.span() for m in _TOKEN.finditer(text) if not (rule.strip_numbers and m.group().isdigit())
    ]


def windows(
    docs: list[list[str]], lengths: np.ndarray, first_tokens: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(hash, doc, start, length) of every window, of every length in ``lengths``, inside each
    token list (only windows whose first token hash is in sorted ``first_tokens``, if given).
    With prefix sums S over all docs, [i, i+k) hashes to P^(i+k-1)(S[i+k]-S[i]), which does
    not depend on where the window sits."""
    sizes = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    total = int(sizes.sum())
    pos, inv = _POWERS.get(total + 1)
    t = np.fromiter((_token_hash(x) for d in docs for x in d), dtype=np.uint64, count=total)
    prefix = np.zeros(total + 1, dtype=np.uint64)
    np.cumsum(t * inv[:total], out=prefix[1:])
    first = np.cumsum(sizes) - sizes
    owner = np.repeat(np.arange(len(docs)), sizes)
    end = (first + sizes)[owner]
    cand = np.arange(total)
    if first_tokens is not None and len(first_tokens):
        slot = np.minimum(np.searchsorted(first_tokens, t), len(first_tokens) - 1)
        cand = cand[first_tokens[slot] == t]
    parts = [(np.zeros(0, dtype=np.uint64),) + (np.zeros(0, dtype=np.int64),) * 3]
    for k in lengths.astype(np.int64).tolist():
        g = cand[cand + k <= end[cand]]
        raw = pos[g + k - 1] * (prefix[g + k] - prefix[g])
        doc = owner[g]
        parts.append((mix64(raw ^ np.uint64(k)), doc, g - first[doc], np.full(len(g), k)))
    return tuple(np.concatenate(x) for x in zip(*parts, strict=True))  # type: ignore[return-value]


def _sorted_unique(keys: list[np.ndarray], items: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    if not keys:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int32)
    k, i = np.concatenate(keys), np.concatenate(items).astype(np.int32)
    uniq, first = np.unique(k, return_index=True)  # first item (in build order) wins
    return uniq, i[first]


def _first_hits(
    hashes: np.ndarray, docs: np.ndarray, keys: np.ndarray
) -> dict[int, tuple[int, int]]:
    """doc → (window index, key slot) of its first window found in sorted ``keys``."""
    if not len(hashes) or not len(keys):
        return {}
    slot = np.minimum(np.searchsorted(keys, hashes), len(keys) - 1)
    found = np.flatnonzero(keys[slot] == hashes)
    hit_docs, first = np.unique(docs[found], return_index=True)
    return {
        int(d): (int(found[f]), int(slot[found[f]])) for d, f in zip(hit_docs, first, strict=True)
    }


@dataclass
class NgramIndex:
    """Picklable, compact index; build with ``NgramIndex.build``."""

    rule: Rule
    items: list[str] = field(default_factory=list)
    long_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    long_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    short_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    short_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    short_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    short_first: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))

    @classmethod
    def build(cls, texts: list[tuple[str, str]], rule: Rule) -> NgramIndex:
        """Index ``(item label, text)`` pairs (an item may come with several texts)."""
        labels: dict[str, int] = {}
        longs, long_owner, shorts, short_owner = [], [], [], []
        for label, text in texts:
            idx = labels.setdefault(label, len(labels))
            long, short = streams(text, rule)
            if len(long) >= rule.n:
                longs.append(long)
                long_owner.append(idx)
            elif short:
                shorts.append(short)
                short_owner.append(idx)
        index = cls(rule, list(labels))
        hashes, doc, _, _ = windows(longs, np.array([rule.n]))
        index.long_keys, index.long_items = _sorted_unique([hashes], [np.asarray(long_owner)[doc]])
        for short, owner in zip(shorts, short_owner, strict=True):
            h, _, _, _ = windows([short], np.array([len(short)]))
            index.short_keys = np.append(index.short_keys, h)
            index.short_items = np.append(index.short_items, np.int32(owner))
        index.short_keys, index.short_items = _sorted_unique(
            [index.short_keys], [index.short_items]
        )
        index.short_lengths = np.unique([len(s) for s in shorts]).astype(np.int64)
        index.short_first = np.unique(
            np.fromiter((_token_hash(s[0]) for s in shorts), dtype=np.uint64, count=len(shorts))
        )
        return index

    def match(self, text: str) -> Match | None:
        """The first (leftmost) benchmark n-gram found in ``text``, or None."""
        return self.match_many([text])[0]

    def match_many(self, texts: list[str]) -> list[Match | None]:
        rule = self.rule
        pairs = [streams(t, rule) for t in texts]
        out: list[Match | None] = [None] * len(texts)
        hashes, doc, start, _ = windows([p[0] for p in pairs], np.array([rule.n]))
        for d, (w, slot) in _first_hits(hashes, doc, self.long_keys).items():
            spans = _long_spans(texts[d], rule)
            lo, hi = spans[start[w]][0], spans[start[w] + rule.n - 1][1]
            out[d] = Match(self.items[self.long_items[slot]], texts[d][lo:hi])
        rest = [d for d in range(len(texts)) if out[d] is None]
        if rest and len(self.short_keys):
            shorts = [pairs[d][1] for d in rest]
            hashes, doc, start, length = windows(shorts, self.short_lengths, self.short_first)
            for r, (w, slot) in _first_hits(hashes, doc, self.short_keys).items():
                words = shorts[r][start[w] : start[w] + length[w]]
                text = " ".join("#" if x == _NUM else x for x in words)
                out[rest[r]] = Match(self.items[self.short_items[slot]], text)
        return out
