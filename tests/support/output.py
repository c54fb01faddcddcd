"""Reading a finished run's output in tests: every row of one split, in file order.

It reads local directories only and does not check the ledger (``OutputStore`` does that).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq


def rows(out: Path, split: str = "data") -> list[dict[str, Any]]:
    """Rows of every parquet file in ``out/<split>`` (``data``, ``rejected``, ``verifier``)."""
    return [
        r for f in sorted((out / split).glob("*.parquet")) for r in pq.read_table(f).to_pylist()
    ]


def rejected_rows(out: Path) -> list[dict[str, Any]]:
    """Every dropped row of ``out`` (``rejected/``), with its reason and detail."""
    return rows(out, "rejected")
