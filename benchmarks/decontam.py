"""Decontamination throughput: rows/s of the ``Decontaminate`` stage against an index of
GSM8K test + MATH test (TinyGSM rule: 13-grams, punctuation and numbers removed, names
masked), on GSM8K-train questions (clean) mixed with leaked test questions (names swapped,
numbers changed, a sentence appended). Also prints the index build time and pickled size, and
the share flagged among clean and leaked rows. Prints measurements from one run; asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.core.records import Record  # noqa: E402
from orchestrator.core.stage import run_chain  # noqa: E402
from orchestrator.quality.decontam import (  # noqa: E402
    BenchmarkSource,
    Decontaminate,
    DecontamSettings,
    build_index,
)

NAMES = ["Xavier", "Yolanda", "Zebulon", "Quincy"]


def read(path: Path, field: str) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line)[field] for line in fh]


def leak(text: str, rng: random.Random) -> str:
    text = re.sub(r"\d+", lambda m: str(int(m.group()) + rng.randint(1, 9)), text)
    names = list(dict.fromkeys(re.findall(r"(?<=[a-z,] )[A-Z][a-z]+", text)))
    for i, name in enumerate(names):
        text = re.sub(rf"\b{name}\b", NAMES[i % len(NAMES)], text)
    return text + " Show your reasoning."


def main() -> None:
    default = Path(os.environ.get("MATHSYNTH_SHARED_DATA", ROOT.parent / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=default)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--leak-rate", type=float, default=0.05)
    args = ap.parse_args()
    settings = DecontamSettings(
        enabled=True,
        benchmarks=[
            BenchmarkSource(path=str(args.data / "gsm8k" / "test.jsonl"), name="gsm8k-test"),
            BenchmarkSource(path=str(args.data / "math" / "test.jsonl"), name="math-test"),
        ],
    )
    start = time.perf_counter()
    index = build_index(settings)
    built = time.perf_counter() - start
    size = len(pickle.dumps(index))
    print(f"index: {len(index.long_keys)} 13-grams + {len(index.short_keys)} short items from "
          f"{len(index.items)} items, built in {built:.2f}s, pickled {size / 1e6:.2f} MB")  # fmt: skip
    rng = random.Random(0)
    clean = read(args.data / "gsm8k" / "train.jsonl", "question")
    tests = read(args.data / "gsm8k" / "test.jsonl", "question")
    tests += read(args.data / "math" / "test.jsonl", "problem")
    rows, leaked = [], set()
    for i in range(args.rows):
        if rng.random() < args.leak_rate:
            rows.append(Record(id=f"r{i}", question=leak(rng.choice(tests), rng)))
            leaked.add(rows[-1].id)
        else:
            base = rng.choice(clean)
            rows.append(
                Record(id=f"r{i}", question=re.sub(r"\d+", lambda m: str(rng.randint(2, 99)), base))
            )
    stage = Decontaminate(index, ["question"])
    start = time.perf_counter()
    kept = run_chain([stage], rows)
    elapsed = time.perf_counter() - start
    dropped = {r.id for r in stage.rejected}
    n_clean = len(rows) - len(leaked)
    print(f"decontam: {len(rows) / elapsed:.0f} rows/s over {len(rows)} rows ({len(kept)} kept); "
          f"leaked caught {len(dropped & leaked)}/{len(leaked)}, "
          f"clean flagged {len(dropped - leaked)}/{n_clean} ({len(dropped - leaked) / n_clean:.4f})")  # fmt: skip


if __name__ == "__main__":
    main()
