"""``summary.json``: every run into an output, and totals that agree with what is on disk.

Each run keeps one entry, ``_mathsynth/runs/<run id>.json`` (written when the run starts, every
``RunLog.EVERY_S`` while it runs and when it ends, so even a killed run leaves its requests,
tokens and cost behind). ``summary.json`` is the latest run's entry (its keys at the top level,
as ``run_job`` returns it), plus ``runs`` (every entry, oldest first) and ``totals``:

- derived from the committed files (``orchestrator.output.stats.funnel``): seeds by final
  outcome, rows in ``data/``, rows in ``rejected/`` by reason (duplicates included), shards;
- summed over the run entries: HTTP requests, completions, tokens, cost, time.

So a resume that does nothing adds a run with zero requests and loses no history, and
``totals.rows`` is always the number of rows ``datasets`` loads. Reply-level problems that
leave no row to store (a reply the parser cannot split) are counted in the runs' own
``rejected_by_reason`` only.

It writes the summary and the run entries; it counts nothing itself.
"""

from __future__ import annotations

import time
from typing import Any

from orchestrator.output.stats import funnel
from orchestrator.output.store import OutputStore

RUNS_DIR = "_mathsynth/runs"
SUMMED = ("requests", "completions", "cache_hits", "prompt_tokens", "completion_tokens")


class RunLog:
    """This run's entry under ``_mathsynth/runs/``."""

    EVERY_S = 30.0

    def __init__(self, store: OutputStore, run_id: str) -> None:
        self.store = store
        self.name = f"{RUNS_DIR}/{run_id}.json"
        self._last = 0.0

    def write(self, entry: dict[str, Any], force: bool = True) -> None:
        """Record ``entry``; with ``force=False`` at most every ``EVERY_S``."""
        now = time.monotonic()
        if force or now - self._last >= self.EVERY_S:
            self.store.write_json(self.name, entry)
            self._last = now


def all_runs(store: OutputStore) -> list[dict[str, Any]]:
    """Every run entry of ``store``, oldest first."""
    runs = [store.read_json(_relative(store, p)) for p in store.storage.glob(RUNS_DIR, "*.json")]
    return sorted((r for r in runs if isinstance(r, dict)), key=lambda r: r.get("started", 0))


def _relative(store: OutputStore, path: str) -> str:
    return path.removeprefix(store.storage.base + "/")


def totals(store: OutputStore, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The output's totals (see the module docstring)."""
    on_disk = funnel(store.url)
    reasons = {
        f"{stage}:{why}": n
        for stage, whys in on_disk["dropped_by_stage"].items()
        for why, n in whys.items()
    }
    summed: dict[str, Any] = {k: sum(int(r.get(k) or 0) for r in runs) for k in SUMMED}
    costs = [r["cost_usd"] for r in runs if r.get("cost_usd") is not None]
    return {
        "seeds": on_disk["seeds"],
        "rows": on_disk["rows"],
        "rejected_rows": on_disk["dropped"],
        "rejected_by_reason": dict(sorted(reasons.items())),
        "duplicates": reasons.get("dedup:duplicate", 0),
        "near_duplicates": reasons.get("near_dedup:near_duplicate", 0),
        "shards": on_disk["shards"],
        **summed,
        "cost_usd": round(sum(costs), 6) if costs else None,
        "elapsed_s": round(sum(float(r.get("elapsed_s") or 0) for r in runs), 2),
        "runs": len(runs),
    }


def write_summary(store: OutputStore, entry: dict[str, Any]) -> dict[str, Any]:
    """``summary.json`` for the run whose entry is ``entry`` (already in the run log)."""
    runs = all_runs(store)
    summary = {**entry, "totals": totals(store, runs), "runs": runs}
    store.write_json("summary.json", summary)
    return summary
