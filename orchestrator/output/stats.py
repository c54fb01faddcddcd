"""``mathsynth stats DIR``: the funnel of an output directory, read from what is on disk.

Everything comes from committed files, so the numbers cover every run that wrote into DIR
(resumed runs included): seeds by outcome from the ledger, rows from ``data/``, dropped rows by
stage and reason from ``rejected/`` (each carries its reason and, for duplicates and
contamination, the id or benchmark item it matched). DIR may be a URL (``s3://``, ``gs://``).
It reads; it never changes DIR.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from orchestrator.output.store import OutputStore


def funnel(out_dir: str | Path) -> dict[str, Any]:
    store = OutputStore(out_dir)
    ledger = store.read_ledger(with_questions=False)
    outcomes = Counter(ledger.outcomes.values())
    reasons: Counter[str] = Counter()
    for file in store.files("rejected"):
        column = store.read_table(file, columns=["reject_reason"]).column("reject_reason")
        for item in pc.value_counts(column).to_pylist():
            reasons[item["values"]] += item["counts"]
    by_stage: dict[str, dict[str, int]] = {}
    for reason, n in sorted(reasons.items()):
        stage, _, why = reason.partition(":")
        by_stage.setdefault(stage, {})[why] = n
    return {
        "seeds": dict(outcomes),
        "rows": len(ledger.row_ids),
        "dropped": sum(reasons.values()),
        "dropped_by_stage": by_stage,
        "shards": ledger.shards,
    }


def rejected_rows(out_dir: str | Path, reason: str, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` dropped rows whose reason is ``reason`` (or starts with ``reason:``)."""
    store = OutputStore(out_dir)
    found: list[dict[str, Any]] = []
    for file in store.files("rejected"):
        for row in store.read_table(file).to_pylist():
            r = row["reject_reason"] or ""
            if r == reason or r.startswith(reason + ":"):
                found.append(row)
                if len(found) >= limit:
                    return found
    return found
