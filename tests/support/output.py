"""Reading a finished run's output in tests: every row of one split, in file order, and every
split loaded with ``datasets`` across its shards.

It reads local directories only and does not check the ledger (``OutputStore`` does that).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

SPLITS = {"data": "train", "rejected": "rejected", "verifier": "verifier"}


def rows(out: Path, split: str = "data") -> list[dict[str, Any]]:
    """Rows of every parquet file in ``out/<split>`` (``data``, ``rejected``, ``verifier``)."""
    return [
        r for f in sorted((out / split).glob("*.parquet")) for r in pq.read_table(f).to_pylist()
    ]


def rejected_rows(out: Path) -> list[dict[str, Any]]:
    """Every dropped row of ``out`` (``rejected/``), with its reason and detail."""
    return rows(out, "rejected")


def check_dataset(out: Path, cache: Path) -> dict[str, int]:
    """Load every split of ``out`` with ``datasets.load_dataset`` over all its shards (it fails
    when two shards' parquet schemas differ); rows of the train and side splits must be
    SFT-ready (``messages`` = user question + assistant ``solution``) and carry no undeclared
    ``meta`` key. Returns the number of shards per split."""
    import datasets

    shards = {}
    for split, prefix in SPLITS.items():
        files = sorted((out / split).glob(f"{prefix}-*.parquet"))
        if not files:
            continue
        ds = datasets.load_dataset(
            "parquet", data_files=[str(f) for f in files], split="train",
            cache_dir=str(cache / split),
        )  # fmt: skip
        assert ds.num_rows == sum(pq.read_metadata(f).num_rows for f in files)
        shards[split] = len(files)
        if split == "rejected":
            continue
        for row in ds:
            assert row["solution"], row
            assert row["messages"] == [
                {"role": "user", "content": row["question"]},
                {"role": "assistant", "content": row["solution"]},
            ]
            assert row["meta"]["extra"] is None, (row["method"], row["meta"])
    return shards
