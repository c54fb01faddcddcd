"""Near-duplicate removal: band keys, the numpy band table, and the index the finalizer asks in
seed order (planted near-duplicates of GSM8K train questions).

What counts as a near-duplicate here: a question with ONE small edit — a word replaced by an
unrelated word, punctuation changed, or one number changed. With word 3-grams such an edit
keeps a Jaccard similarity of ~0.87 (median; 5th percentile ~0.75), while distinct GSM8K
questions almost never exceed 0.6 (see ``orchestrator.quality.near_dedup``). LSH is probabilistic
but deterministic here (fixed seed, fixed data), so the measured figures are stable.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from orchestrator.core.records import Record
from orchestrator.quality.band_table import BandTable, encode_ids
from orchestrator.quality.near_dedup import PREVIOUS_RUN, NearDedupSettings, NearIndex

WORDS = ["zebra", "violin", "planet", "quartz", "harbor", "lantern", "meadow", "saddle"]
_NUM = re.compile(r"\d+")
_ALPHA = re.compile(r"[A-Za-z]{3,}")
_W = re.compile(r"\w+")


def replace_word(q: str, rng: random.Random) -> str:
    m = rng.choice(list(_ALPHA.finditer(q)))
    return q[: m.start()] + rng.choice(WORDS) + q[m.end() :]


def punctuation(q: str, rng: random.Random) -> str:
    q = q.replace(", ", " ").replace("?", " ?")
    return q + "!!" if rng.random() < 0.5 else q.rstrip(".?!") + "..."


def change_number(q: str, rng: random.Random) -> str:
    m = rng.choice(list(_NUM.finditer(q)))
    return q[: m.start()] + str(int(m.group()) + rng.randint(1, 9)) + q[m.end() :]


EDITS = {"word": replace_word, "punct": punctuation, "number": change_number}


def jaccard3(a: str, b: str) -> float:
    def grams(t: str) -> set[str]:
        w = _W.findall(t.casefold())
        return {" ".join(w[i : i + 3]) for i in range(max(1, len(w) - 2))}

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


@pytest.fixture(scope="module")
def questions(gsm8k_train: Path) -> list[str]:
    with gsm8k_train.open(encoding="utf-8") as fh:
        return [json.loads(line)["question"] for line in fh][:1200]


def records(texts: list[str], tag: str = "") -> list[Record]:
    return [Record.seed(t, None, "test" + tag) for t in texts]


def make(**overrides: object) -> NearIndex:
    return NearIndex(NearDedupSettings(enabled=True, **overrides))


def admit_in_batches(index: NearIndex, recs: list[Record], size: int = 100) -> list[str | None]:
    out: list[str | None] = []
    for lo in range(0, len(recs), size):
        part = recs[lo : lo + size]
        out += index.admit([r.question for r in part], [r.id for r in part])
    return out


def test_settings_defaults_and_validation() -> None:
    s = NearDedupSettings()
    assert (s.unit, s.ngram, s.threshold, s.num_perm, s.band_params()) == (
        "word", 3, 0.7, 128, (14, 9),
    )  # fmt: skip
    lsh = pytest.importorskip("datasketch.lsh")
    for th in (0.5, 0.7, 0.8, 0.9):
        assert NearDedupSettings(threshold=th).band_params() == lsh._optimal_param(
            th, 128, 0.5, 0.5
        )
    assert NearDedupSettings(bands=20, rows=5).band_params() == (20, 5)
    for bad in ({"bands": 4}, {"bands": 20, "rows": 7}, {"shard": 2}, {"unit": "token"}):
        with pytest.raises(ValidationError):
            NearDedupSettings(**bad)


def test_band_table_matches_a_dict() -> None:
    rng = np.random.default_rng(0)
    table, ref = BandTable(capacity=16), {}
    pool = rng.integers(1, 2**63, size=3000, dtype=np.int64).astype(np.uint64)
    for step in range(40):
        keys = np.unique(rng.choice(pool, size=200))
        members = table.holders(keys)
        assert [m >= 0 for m in members] == [int(k) in ref for k in keys]
        fresh = keys[members < 0]
        ids = [f"id{step}-{i}" for i in range(len(fresh))]
        table.put(fresh, encode_ids(ids))
        ref.update(zip(map(int, fresh), ids, strict=True))
    keys = np.array(list(ref), dtype=np.uint64)
    assert [table.pool.ids[m].decode() for m in table.holders(keys)] == list(ref.values())
    assert table.live == len(ref) and 2 * table.live <= len(table.keys)


def test_planted_near_duplicates_are_removed_and_name_their_original(questions) -> None:
    """Measured: 290/300 edits caught (word 97/100, punct 100/100, number 93/100; an edit near
    the end of a short question can fall below the 0.7 threshold) and 0 of the 1200 originals
    dropped (a dropped one must be a true near-duplicate inside GSM8K: Jaccard ≥ 0.5)."""
    index = make()
    rng = random.Random(7)
    originals = records(questions)
    planted: list[tuple[str, Record, Record]] = []
    for i in range(300):
        kind = list(EDITS)[i % 3]
        source = originals[4 * i]
        if kind == "number" and not _NUM.search(source.question):
            source = next(r for r in originals[4 * i :] if _NUM.search(r.question))
        planted.append((kind, source, Record.seed(EDITS[kind](source.question, rng), None, "e")))
    base = admit_in_batches(index, originals)
    dropped = {r.id: holder for r, holder in zip(originals, base, strict=True) if holder}
    by_id = {r.id: r for r in originals}
    for rid, holder in dropped.items():
        assert jaccard3(by_id[rid].question, by_id[holder].question) >= 0.5
    assert len(dropped) <= 6  # ≤ 0.5% of distinct questions
    verdicts = admit_in_batches(index, [e for _, _, e in planted], size=64)
    caught = {k: 0 for k in EDITS}
    for (kind, source, _), holder in zip(planted, verdicts, strict=True):
        if holder is not None:
            caught[kind] += 1
            assert holder in (source.id, dropped.get(source.id))
    print("caught per edit kind (of 100):", caught, "originals dropped:", len(dropped))
    assert caught["punct"] == 100
    assert sum(caught.values()) >= 0.95 * len(planted)


def test_decisions_depend_on_order_only_not_on_batches(questions) -> None:
    """The finalizer hands rows over in batches whose size depends on timing: the verdicts must
    be the same whatever the batching, and the earlier row of a pair always wins."""
    recs = records(questions[:400]) + records([q + " Why?" for q in questions[:400:3]], "x")
    recs = recs[::2] + recs[1::2]  # edits interleaved with originals
    runs = [admit_in_batches(make(), recs, size=size) for size in (1, 7, 50, len(recs))]
    assert all(run == runs[0] for run in runs) and sum(v is not None for v in runs[0]) >= 120
    position = {r.id: i for i, r in enumerate(recs)}
    for rec, holder in zip(recs, runs[0], strict=True):
        assert holder is None or position[holder] < position[rec.id]


def test_two_copies_of_one_row_keep_one_and_a_dropped_row_leaves_nothing(questions) -> None:
    """Ids are content hashes: the same row twice (a teacher repeating itself) is a duplicate
    of itself, in one batch or two. A chain A ~ B ~ C where A and C are far apart keeps A and
    C: the dropped B holds no bucket."""
    index = make()
    twin = records(questions[:3])
    assert index.admit([r.question for r in twin * 2], [r.id for r in twin * 2]) == [
        None, None, None, twin[0].id, twin[1].id, twin[2].id,
    ]  # fmt: skip
    assert index.admit([twin[0].question], [twin[0].id]) == [twin[0].id]
    chain = next(c for c in map(edit_chain, questions) if c and chained(index, c))
    assert make().admit(chain, ["a", "b", "c"]) == [None, "a", None]


def edit_chain(question: str) -> list[str] | None:
    """[A, B, C]: B is A with two words inserted, C with four (same places)."""
    w = question.split()
    if len(w) < 30:
        return None
    n = len(w) // 3
    b = w[:n] + ["zebra"] + w[n : 2 * n] + ["violin"] + w[2 * n :]
    c = w[:n] + ["zebra", "quartz"] + w[n : 2 * n] + ["violin", "harbor"] + w[2 * n :]
    return [question, " ".join(b), " ".join(c)]


def chained(index: NearIndex, texts: list[str]) -> bool:
    """A and B share a band, B and C share one, A and C share none."""
    k = index.keys(texts)
    return bool((k[0] == k[1]).any() and (k[1] == k[2]).any() and not (k[0] == k[2]).any())


def test_incremental_against_a_preloaded_earlier_run(questions) -> None:
    index = make()
    earlier = records(questions[:600])
    index.preload((r.question, r.id) for r in earlier)
    edits = records([q.replace(", ", " ") + "!" for q in questions[:600:5]], "new")
    new = records(questions[600:900])
    verdicts = admit_in_batches(index, edits + new, size=len(edits) + len(new))
    assert verdicts[: len(edits)] == [r.id for r in earlier[::5]]
    assert sum(v is not None for v in verdicts[len(edits) :]) <= 2
    bare = make()
    bare.preload(r.question for r in earlier)  # questions only: holder is PREVIOUS_RUN
    assert admit_in_batches(bare, edits[:5]) == [PREVIOUS_RUN] * 5


def test_memory_follows_kept_rows(questions) -> None:
    index = make()
    recs = records(questions[:300]) + records([q + " Explain." for q in questions[:300]], "x")
    first = admit_in_batches(index, recs, size=40)
    kept = sum(v is None for v in first)
    assert index.stats()["entries"] == kept * index.bands  # dropped records left nothing behind
    more = records([q.replace(" ", "  ") + " Why?" for q in questions[:300]], "y")
    new_kept = sum(v is None for v in admit_in_batches(index, more, size=40))
    assert new_kept <= 5
    assert index.stats()["entries"] == (kept + new_kept) * index.bands
