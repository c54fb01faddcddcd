"""MinHash signatures and LSH band keys for batches of texts, vectorised end to end.

Pipeline for a batch: normalise (ASCII lower-case, typographic quotes/dashes to spaces) → words =
maximal runs of ASCII letters/digits or non-ASCII bytes (so punctuation never matters) →
shingles (word n-grams, or byte n-grams over the words joined by single spaces) hashed to 64
bits in numpy → R-MinHash digests from ``rensa`` (Rust) → one 64-bit key per LSH band.

Every hash here is a fixed function of the text (no Python ``hash``, no per-process salt), so
two workers on different machines compute the same keys for the same text; a text shorter than
``n`` units becomes one shingle (its whole unit sequence), an empty text one constant shingle.
Digests depend on rensa's algorithm version (pinned ``rensa>=0.5,<0.6``); nothing here is
persisted, preloads recompute keys from text. This module does no I/O and knows nothing of Ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import rensa

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_EMPTY_DOC = np.uint64(0x5DEECE66D)
_MAX_POS = 64  # tabulation positions; longer words wrap (still a good hash)
_CHUNK = 1024  # rensa's matrix → rows conversion is fastest on moderate chunks (measured)

# UTF-8 of curly quotes, en/em dashes and the ellipsis (E2 80 xx): not part of words.
_PUNCT_3 = np.zeros(256, dtype=bool)
_PUNCT_3[[0x93, 0x94, 0x98, 0x99, 0x9C, 0x9D, 0xA6]] = True
_WORD_BYTE = np.zeros(256, dtype=bool)
for _lo, _hi in ((48, 58), (65, 91), (97, 123), (128, 256)):
    _WORD_BYTE[_lo:_hi] = True


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (bijective on uint64), vectorised."""
    z = z.astype(np.uint64, copy=True)
    z ^= z >> _S30
    z *= _M1
    z ^= z >> _S27
    z *= _M2
    z ^= z >> _S31
    return z


@lru_cache(maxsize=4)
def _table(salt: int) -> np.ndarray:
    """Tabulation-hash table: a random uint64 per (position in word, byte value), flat."""
    return mix64(np.arange(_MAX_POS * 256, dtype=np.uint64) + np.uint64(salt))


def _coefficients(n: int) -> np.ndarray:
    return mix64(np.arange(1, n + 1, dtype=np.uint64) * _GOLDEN) | np.uint64(1)


def _windows(units: np.ndarray, docs: np.ndarray, n: int, ndocs: int) -> list[np.ndarray]:
    """Hashes of every run of ``n`` consecutive units inside one doc (units sorted by doc);
    a doc with fewer than ``n`` units (but some) gets one hash over all of them."""
    coef = _coefficients(n)
    counts = np.bincount(docs, minlength=ndocs)
    out_h: list[np.ndarray] = []
    out_d: list[np.ndarray] = []
    if len(units) >= n:
        acc = np.zeros(len(units) - n + 1, dtype=np.uint64)
        for j in range(n):
            acc += units[j : len(units) - n + 1 + j] * coef[j]
        ok = docs[: len(acc)] == docs[n - 1 :]
        out_h.append(mix64(acc[ok]))
        out_d.append(docs[: len(acc)][ok])
    short = np.flatnonzero((counts > 0) & (counts < n))
    if short.size:
        first = np.concatenate(([0], np.cumsum(counts)[:-1]))
        sel = np.isin(docs, short)
        pos = np.arange(len(units))[sel] - first[docs[sel]]
        sums = np.add.reduceat(
            units[sel] * coef[pos], np.flatnonzero(np.diff(docs[sel], prepend=-1))
        )
        out_h.append(mix64(sums))
        out_d.append(short)
    empty = np.flatnonzero(counts == 0)
    out_h.append(np.full(len(empty), _EMPTY_DOC, dtype=np.uint64))
    out_d.append(empty)
    return [np.concatenate(out_h), np.concatenate(out_d)]


def _word_mask(buf: np.ndarray) -> np.ndarray:
    """Bytes that belong to words: ASCII letters/digits and non-ASCII bytes, except the UTF-8
    of typographic quotes/dashes/ellipsis and of a no-break space (C2 A0)."""
    word = _WORD_BYTE[buf]
    lead = np.flatnonzero(buf[:-2] == 0xE2)
    lead = lead[(buf[lead + 1] == 0x80) & _PUNCT_3[buf[lead + 2]]]
    nbsp = np.flatnonzero((buf[:-1] == 0xC2) & (buf[1:] == 0xA0))
    for shift in (0, 1, 2):
        word[lead + shift] = False
    word[nbsp] = False
    word[nbsp + 1] = False
    return word


def shingle_hashes(
    texts: Sequence[str], unit: str = "word", n: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Flat uint64 shingle hashes of all texts, grouped by text, and row offsets (len+1)."""
    blob = "\x00".join(texts)
    if blob.count("\x00") != max(len(texts) - 1, 0):  # NUL separates texts: none inside
        blob = "\x00".join(t.replace("\x00", " ") for t in texts)
    buf = np.frombuffer(blob.encode("utf-8").lower(), dtype=np.uint8)  # ASCII case folding
    separators = np.flatnonzero(buf == 0)
    word = _word_mask(buf)
    prev = np.concatenate(([False], word[:-1]))
    if unit == "word":
        idx = np.flatnonzero(word)
        wstart = np.flatnonzero((word & ~prev)[idx])
        lens = np.diff(np.append(wstart, len(idx)))
        offset = np.arange(len(idx)) - np.repeat(wstart, lens)
        vals = _table(7).take((offset % _MAX_POS) * 256 + buf[idx])
        units = np.zeros(0, dtype=np.uint64)
        if len(wstart):
            units = mix64(
                np.bitwise_xor.reduceat(vals, wstart) ^ (lens.astype(np.uint64) * _GOLDEN)
            )
        docs = np.searchsorted(separators, idx[wstart])
    elif unit == "char":
        keep = word | (prev & (buf != 0))  # word bytes, plus one space after each word
        idx = np.flatnonzero(keep)
        units = np.where(word[idx], buf[idx], 32).astype(np.uint64) + np.uint64(1)
        docs = np.searchsorted(separators, idx)
    else:
        raise ValueError(f"unit must be 'word' or 'char', not {unit!r}")
    hashes, owner = _windows(units, docs, n, len(texts))
    order = np.argsort(owner, kind="stable")
    offsets = np.zeros(len(texts) + 1, dtype=np.uint64)
    offsets[1:] = np.cumsum(np.bincount(owner, minlength=len(texts)))
    return hashes[order], offsets


def signatures(
    texts: Sequence[str], *, unit: str = "word", n: int = 3, num_perm: int = 128, seed: int = 1
) -> np.ndarray:
    """R-MinHash digests, uint32 array of shape (len(texts), num_perm)."""
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    for lo in range(0, len(texts), _CHUNK):
        hashes, offsets = shingle_hashes(texts[lo : lo + _CHUNK], unit, n)
        matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
            hashes, offsets, num_perm, seed
        )
        out[lo : lo + _CHUNK] = matrix.to_rows()
    return out


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One nonzero uint64 key per (text, band): a hash of the band index and its ``rows``
    digest values. Equal keys ⇔ (up to 2^-64) equal bands."""
    if bands * rows > sigs.shape[1]:
        raise ValueError(f"{bands} bands x {rows} rows exceed {sigs.shape[1]} permutations")
    part = sigs[:, : bands * rows].reshape(len(sigs), bands, rows)
    # A random linear form of the 32-bit values mod 2^64 (distinct tuples collide with
    # probability ~2^-64), salted by band index, then mixed.
    acc = np.empty((len(sigs), bands), dtype=np.uint64)
    acc[:] = mix64(np.arange(bands, dtype=np.uint64) + _GOLDEN)
    for j, c in enumerate(_coefficients(rows)):
        acc += part[:, :, j].astype(np.uint64) * c
    acc = mix64(acc)
    acc[acc == 0] = 1  # 0 marks an empty slot in the band tables
    return acc


def collision_probability(similarity: float, bands: int, rows: int) -> float:
    """P(at least one band equal) for two texts of Jaccard ``similarity``."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def optimal_bands(
    threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) minimising the weighted area of false positives below ``threshold`` and
    false negatives above it, the standard computation (as datasketch's ``MinHashLSH``; same
    result for the usual settings), with Gauss-Legendre quadrature instead of scipy."""
    x, w = np.polynomial.legendre.leggauss(64)
    lo_s, lo_w = (x + 1) * threshold / 2, w * threshold / 2
    hi_s, hi_w = threshold + (x + 1) * (1 - threshold) / 2, w * (1 - threshold) / 2
    best, opt = float("inf"), (1, 1)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = float(np.sum(lo_w * (1 - (1 - lo_s**r) ** b)))
            fn = float(np.sum(hi_w * (1 - hi_s**r) ** b))
            err = fp * fp_weight + fn * fn_weight
            if err < best:
                best, opt = err, (b, r)
    return opt
