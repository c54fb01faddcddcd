"""Skywork stage 2's seeds: a diverse core set of stage-1 problems from hard lineages.

``kcenter_greedy(texts, k)`` is a pure function: texts are sketched with MinHash (word n-gram
shingles, ``orchestrator.quality.minhash``), the distance of two texts is the fraction of differing
signature slots (an estimate of 1 - Jaccard similarity), and the greedy 2-approximation of
k-center picks, ``k`` times, the text farthest from everything picked so far (ties: lowest
index; the first pick is ``first``). Cost: O(n * k * num_perm) comparisons, vectorised.

``stage2_seeds`` reads a stage-1 output directory (``data/train-*.parquet``), keeps the rows
whose seed is hard (``difficulty_field`` of the original seed file at least
``min_difficulty``; "Level 4" reads as 4), selects a core set of them, and adds the hard
original seeds. Run it as a command between the two stages::

    python -m orchestrator.methods.skywork.coreset out/skywork-s1 --seeds seeds/math.yaml \\
        --difficulty-field level --min-difficulty 4 --size 2000 --out seeds-stage2.jsonl

A selected row keeps a gold answer only if stage 1 verified one (MetaMath operations); the
output is a seed file (``question``, ``answer``, provenance fields) for ``mathsynth run``.
This module does not generate anything and does not start Ray.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import yaml

from orchestrator.core.resources import resolve_seed_file
from orchestrator.core.seeds import READERS, SeedConfig, SeedError, normalise_rows
from orchestrator.quality.minhash import signatures


def kcenter_greedy(
    texts: list[str], k: int, *, num_perm: int = 128, ngram: int = 2, first: int = 0
) -> list[int]:
    """Indices of ``k`` mutually distant texts (see module docstring), in pick order."""
    if k <= 0 or not texts:
        return []
    sigs = signatures(texts, unit="word", n=ngram, num_perm=num_perm)
    chosen = [first]
    dist = (sigs != sigs[first]).mean(axis=1)
    dist[first] = -1.0
    while len(chosen) < min(k, len(texts)):
        pick = int(np.argmax(dist))
        chosen.append(pick)
        np.minimum(dist, (sigs != sigs[pick]).mean(axis=1), out=dist)
        dist[chosen] = -1.0
    return chosen


def parse_difficulty(value: Any) -> float | None:
    """A difficulty label as a number: 4, "4", "Level 4" -> 4.0; None when there is none."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = re.search(r"-?\d+(?:\.\d+)?", str(value))
    return float(match.group()) if match else None


def _raw_rows(spec: str, cfg: SeedConfig) -> tuple[list[tuple[int, dict[str, Any]]], SeedConfig]:
    """The seed source's raw rows, and the field settings to read them with."""
    path = resolve_seed_file(spec)
    if path is not None and path.suffix in (".yaml", ".yml"):  # a descriptor, seeds/math.yaml
        inner = SeedConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        if inner.path is None:
            raise SeedError(f"{path}: the seed descriptor names no path")
        return _raw_rows(inner.path, inner)
    if path is not None:
        reader = READERS.get(path.suffix)
        if reader is None:
            raise SeedError(f"{path}: unsupported seed file type (jsonl/json/parquet)")
        return list(reader(path)), cfg
    import datasets

    ds = datasets.load_dataset(spec, cfg.hf_config, split=cfg.split)
    return [(i + 1, row) for i, row in enumerate(ds)], cfg


def seed_difficulties(
    spec: str, field: str, cfg: SeedConfig | None = None
) -> dict[str, tuple[float, dict[str, Any]]]:
    """Seed id -> (difficulty, seed as {question, answer}) for rows that have a difficulty."""
    rows, cfg = _raw_rows(spec, cfg or SeedConfig())
    out: dict[str, tuple[float, dict[str, Any]]] = {}
    for line, row in rows:
        level = parse_difficulty(row.get(field))
        if level is None:
            continue
        (seed,) = normalise_rows([(line, row)], spec, cfg)
        out[seed.id] = (level, {"question": seed.question, "answer": seed.gold_answer})
    return out


def read_output_rows(out_dir: str | Path) -> list[dict[str, Any]]:
    """The accepted rows of a mathsynth output directory."""
    files = sorted((Path(out_dir) / "data").glob("train-*.parquet"))
    if not files:
        raise SeedError(f"{out_dir}: no data/train-*.parquet (not a mathsynth output dir?)")
    columns = ["id", "seed_id", "question", "gold_answer"]
    return [row for f in files for row in pq.read_table(f, columns=columns).to_pylist()]


def stage2_seeds(
    stage1_dir: str | Path,
    size: int,
    *,
    seeds: str | None = None,
    difficulty_field: str | None = None,
    min_difficulty: float = 4,
    include_hard_seeds: bool = True,
    num_perm: int = 128,
    ngram: int = 2,
) -> list[dict[str, Any]]:
    """Stage-2 seed rows: the core set, then (optionally) the hard original seeds."""
    rows = read_output_rows(stage1_dir)
    hard: dict[str, tuple[float, dict[str, Any]]] | None = None
    if seeds is not None and difficulty_field is not None:
        levels = seed_difficulties(seeds, difficulty_field)
        hard = {sid: v for sid, v in levels.items() if v[0] >= min_difficulty}
        rows = [r for r in rows if r["seed_id"] in hard]
    picked = kcenter_greedy([r["question"] for r in rows], size, num_perm=num_perm, ngram=ngram)
    out = [
        {"question": rows[i]["question"], "answer": rows[i]["gold_answer"],
         "source": "skywork-stage1-coreset", "stage1_id": rows[i]["id"],
         "seed_id": rows[i]["seed_id"]}
        for i in picked
    ]  # fmt: skip
    if include_hard_seeds and hard:
        out += [
            {**seed, "source": "hard-seed", "seed_id": sid, "difficulty": level}
            for sid, (level, seed) in hard.items()
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.methods.skywork.coreset",
        description="Write Skywork stage-2 seeds: a k-center core set of stage-1 problems "
        "descending from hard seeds, plus the hard seeds themselves.",
    )
    parser.add_argument("stage1_dir", help="the stage-1 mathsynth output directory")
    parser.add_argument("--out", required=True, help="seed file to write (.jsonl)")
    parser.add_argument("--size", type=int, default=1000, help="core-set size")
    parser.add_argument("--seeds", help="the stage-1 seed file or HF id (for difficulties)")
    parser.add_argument("--difficulty-field", help="seed field with the difficulty, e.g. level")
    parser.add_argument("--min-difficulty", type=float, default=4)
    parser.add_argument("--no-hard-seeds", action="store_true", help="core set only")
    parser.add_argument("--num-perm", type=int, default=128, help="MinHash permutations")
    parser.add_argument("--ngram", type=int, default=2, help="word n-gram shingle size")
    args = parser.parse_args(argv)
    if (args.seeds is None) != (args.difficulty_field is None):
        parser.error("--seeds and --difficulty-field go together")
    rows = stage2_seeds(
        args.stage1_dir, args.size, seeds=args.seeds, difficulty_field=args.difficulty_field,
        min_difficulty=args.min_difficulty, include_hard_seeds=not args.no_hard_seeds,
        num_perm=args.num_perm, ngram=args.ngram,
    )  # fmt: skip
    with open(args.out, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} stage-2 seeds to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
