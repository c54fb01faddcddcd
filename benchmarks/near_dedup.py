"""Near-duplicate removal: throughput against datasketch, recall/precision, and memory.

Corpus: GSM8K-like questions built from ``gsm8k/train.jsonl``: each base question joins three
sentences of three random train questions (the last one a question sentence) with every number
redrawn, so bases are distinct but read like GSM8K; ``--dup-rate`` of them get one planted
near-duplicate later in the stream (one word replaced, punctuation changed, or one number
changed). Both systems use word 3-grams, the same threshold and 128 permutations (hence the
same 14x9 bands), keep-first-seen; ours runs as the finalizer calls it (``NearIndex.admit`` on
batches, in stream order), datasketch the straightforward way (a ``MinHash`` per doc,
``lsh.query`` then ``lsh.insert``). Memory: the index's table bytes and this process's peak RSS
after ``--docs`` distinct rows vs ``--big`` rows that are mostly duplicates of ``--docs``
distinct ones (each case in a fresh child process). Prints ratios measured in one run; asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.core.records import Record  # noqa: E402
from orchestrator.quality.near_dedup import NearDedupSettings, NearIndex  # noqa: E402

_SENT = re.compile(r"(?<=[.?!])\s+")
_NUM = re.compile(r"\d+")
_ALPHA = re.compile(r"[A-Za-z]{3,}")
_WORD = re.compile(r"\w+")
FILLERS = ["zebra", "violin", "planet", "quartz", "harbor", "lantern", "meadow", "saddle"]


def load_sentences(data: Path) -> tuple[list[str], list[str]]:
    with (data / "gsm8k" / "train.jsonl").open(encoding="utf-8") as fh:
        questions = [json.loads(line)["question"] for line in fh]
    sents = [s.strip() for q in questions for s in _SENT.split(q) if len(s.split()) >= 4]
    return [s for s in sents if not s.endswith("?")], [s for s in sents if s.endswith("?")]


def redraw(text: str, rng: random.Random) -> str:
    return _NUM.sub(lambda m: str(rng.randint(2, 10 ** len(m.group()) + 9)), text)


def edit(text: str, rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0 and _ALPHA.search(text):
        m = rng.choice(list(_ALPHA.finditer(text)))
        return text[: m.start()] + rng.choice(FILLERS) + text[m.end() :]
    if kind == 1 or not _NUM.search(text):
        return text.replace(", ", " ").replace("?", " ?") + "!"
    m = rng.choice(list(_NUM.finditer(text)))
    return text[: m.start()] + str(int(m.group()) + rng.randint(1, 9)) + text[m.end() :]


def corpus(data: Path, docs: int, dup_rate: float, seed: int = 0) -> tuple[list[Record], set[str]]:
    """``docs`` records in stream order, and the ids of the planted near-duplicates."""
    rng = random.Random(seed)
    plain, asks = load_sentences(data)
    n_base = int(docs / (1 + dup_rate))
    bases = [
        redraw(" ".join([*rng.sample(plain, 2), rng.choice(asks)]), rng) for _ in range(n_base)
    ]
    stream: list[tuple[float, str, bool]] = [
        (i + rng.random(), b, False) for i, b in enumerate(bases)
    ]
    for i in rng.sample(range(n_base), docs - n_base):
        stream.append((i + 1 + rng.random() * (n_base - i), edit(bases[i], rng), True))
    stream.sort(key=lambda t: t[0])
    recs = [Record(id=f"d{i:07d}", question=text) for i, (_, text, _) in enumerate(stream)]
    planted = {r.id for r, (_, _, dup) in zip(recs, stream, strict=True) if dup}
    return recs, planted


def scores(dropped: set[str], planted: set[str]) -> str:
    hit = len(dropped & planted)
    precision = hit / len(dropped) if dropped else 1.0
    return f"recall={hit / len(planted):.4f} precision={precision:.4f}"


def ours(settings: NearDedupSettings, recs: list[Record], batch: int):
    """Dropped ids, seconds, and the index's stats (entries, table bytes, peak RSS)."""
    index = NearIndex(settings)
    start = time.perf_counter()
    dropped = set()
    for lo in range(0, len(recs), batch):
        part = recs[lo : lo + batch]
        verdicts = index.admit([r.question for r in part], [r.id for r in part])
        dropped |= {r.id for r, v in zip(part, verdicts, strict=True) if v is not None}
    return dropped, time.perf_counter() - start, index.stats()


def datasketch_run(recs: list[Record], threshold: float, per_token: bool):
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    lsh, dropped = MinHashLSH(threshold=threshold, num_perm=128), set()
    for r in recs:
        w = _WORD.findall(r.question.casefold())
        grams = [" ".join(w[i : i + 3]).encode() for i in range(max(1, len(w) - 2))]
        m = MinHash(num_perm=128)
        if per_token:
            for g in grams:
                m.update(g)
        else:
            m.update_batch(grams)
        if lsh.query(m):
            dropped.add(r.id)
        else:
            lsh.insert(r.id, m)
    return dropped, time.perf_counter() - start, (lsh.b, lsh.r)


def memory_corpus(data: Path, distinct: int, total: int) -> list[Record]:
    """``distinct`` rows, then ``total - distinct`` copies or edits of them, shuffled."""
    small, _ = corpus(data, distinct, 0.0, seed=1)
    if total <= distinct:
        return small
    rng = random.Random(2)
    big = list(small)
    for i in range(total - distinct):
        src = rng.choice(small).question
        big.append(Record(id=f"x{i:08d}", question=src if rng.random() < 0.5 else edit(src, rng)))
    rng.shuffle(big)
    return big


def _memory_case(settings: NearDedupSettings, data: Path, distinct: int, total: int,
                 batch: int, queue) -> None:  # fmt: skip
    recs = memory_corpus(data, distinct, total)
    dropped, elapsed, stats = ours(settings, recs, batch)
    queue.put((len(recs), len(dropped), elapsed, stats))


def memory(settings: NearDedupSettings, data: Path, distinct: int, total: int, batch: int):
    out = []
    ctx = multiprocessing.get_context("spawn")  # a fresh process per case: its own peak RSS
    for rows in (distinct, total):
        queue = ctx.Queue()
        args = (settings, data, distinct, rows, batch, queue)
        proc = ctx.Process(target=_memory_case, args=args)
        proc.start()
        n, dropped, elapsed, stats = queue.get()
        proc.join()
        rss, table = stats["peak_rss_bytes"] / 2**20, stats["table_bytes"] / 2**20
        print(
            f"memory rows={n} kept={n - dropped} entries={stats['entries']} "
            f"peak_rss={rss:.1f}MiB tables={table:.1f}MiB ({n / elapsed:.0f} docs/s)",
            flush=True,
        )
        out.append((rss, table))
    print(f"memory ratio {total}/{distinct} rows: peak_rss x{out[1][0] / out[0][0]:.2f} "
          f"tables x{out[1][1] / out[0][1]:.2f} (input x{total / distinct:.0f})")  # fmt: skip


def main() -> None:
    default = Path(os.environ.get("MATHSYNTH_SHARED_DATA", ROOT.parent / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=default)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--dup-rate", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--big", type=int, default=1_000_000, help="rows for the memory case")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    settings = NearDedupSettings(enabled=True, threshold=args.threshold)
    recs, planted = corpus(args.data, args.docs, args.dup_rate)
    print(f"corpus docs={len(recs)} planted={len(planted)} bands x rows={settings.band_params()}")
    dropped, elapsed, _ = ours(settings, recs, args.batch)
    our_rate = len(recs) / elapsed
    print(f"ours (rensa + NearIndex, batch={args.batch}): "
          f"{our_rate:.0f} docs/s {scores(dropped, planted)}", flush=True)  # fmt: skip
    ds_dropped, ds_elapsed, br = datasketch_run(recs, args.threshold, per_token=False)
    ds_rate = len(recs) / ds_elapsed
    print(f"datasketch MinHashLSH b x r={br} (update_batch): {ds_rate:.0f} docs/s "
          f"{scores(ds_dropped, planted)}", flush=True)  # fmt: skip
    head = recs[: min(len(recs), 10_000)]
    _, tok_elapsed, _ = datasketch_run(head, args.threshold, per_token=True)
    tok_rate = len(head) / tok_elapsed
    print(f"datasketch per-token update on the first {len(head)} docs: {tok_rate:.0f} docs/s")
    print(f"speed ratio ours/datasketch: x{our_rate / ds_rate:.1f} (update_batch), "
          f"x{our_rate / tok_rate:.1f} (per-token update)")  # fmt: skip
    if not args.skip_memory:
        memory(settings, args.data, args.docs, args.big, args.batch)


if __name__ == "__main__":
    main()
