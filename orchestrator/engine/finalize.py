"""The finalizer: turns workers' candidate commits into the dataset, deterministically.

Generation workers commit *candidates*: each finished seed's outcome and the rows that passed
every per-row check (``orchestrator.output.store``). Which of two equal rows is kept must not
depend on which worker finished first, so dedup is not decided there: the driver's
``Finalizer`` takes the seeds in the run's seed order (``order``), and only once every earlier
seed has a candidate outcome, runs exact then near dedup over their rows in that order (the
earlier seed's row, or the earlier row of one seed, wins) and commits the survivors as the
dataset's rows (a *final commit*), with every dropped copy in ``rejected/`` naming the row it
duplicates. The same seeds with the same teacher replies therefore give the same dataset,
whatever the number of workers, the timing, or where a run was interrupted and resumed; rows
already in the output (earlier runs) and in ``dedup.against`` datasets are loaded first and
always win. A seed that failed (retried on the next run) is finalized as failed; when its retry
succeeds later, its rows are deduplicated against everything final by then.

Final commits are made by size or time (``final_commit_rows``, at a seed's boundary, /
``final_commit_s``) and at the end of the run; a final commit names the candidate commits it used up, which are then removed.
Rows of seeds still waiting for an earlier seed stay in memory (and in their candidate commit on
storage, so a killed run loses nothing).

It does not run pipelines, talk to Ray or render anything; it reads candidates only when the
driver hands it their ids (resume, a worker's death).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.config import PipelineConfig
from orchestrator.output.store import FinalCommit, OutputStore
from orchestrator.quality.dedup import ExactIndex
from orchestrator.quality.near_dedup import NearIndex
from orchestrator.telemetry.counters import Counters


@dataclass
class Finished:
    """One seed's candidate outcome and rows (``ROW_SCHEMA`` dicts, in the pipeline's order)."""

    outcome: str
    candidate: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    failure: str | None = None


class Finalizer:
    def __init__(
        self,
        store: OutputStore,
        cfg: PipelineConfig,
        order: Iterable[str] = (),
        counters: Counters | None = None,
    ) -> None:
        self.store = store
        self.order: deque[str] = deque(order)  # seeds to finalize, in seed order (``expect``)
        self.results: dict[str, Finished] = {}  # seed -> its candidate outcome, not final yet
        self.remaining: dict[str, set[str]] = {}  # candidate id -> its seeds not final yet
        self.exact = ExactIndex() if cfg.dedup.exact else None
        self.near = NearIndex(cfg.dedup.near) if cfg.dedup.near.enabled else None
        self.commit_rows = cfg.run.final_commit_rows
        self.commit_s = cfg.run.final_commit_s
        self.counters = counters if counters is not None else Counters()
        self.batch = FinalCommit()
        self.batch_since: float | None = None
        self.final_commits = 0

    # -- input ----------------------------------------------------------------------------------

    def preload(self, rows: list[tuple[str, str]]) -> None:
        """``(question, row id)`` of rows already written: they hold their keys for good."""
        if self.exact is not None:
            self.exact.preload(rows)
        if self.near is not None:
            self.near.preload(rows)

    def known(self, cid: str) -> bool:
        return cid in self.remaining

    def expect(self, seed: str) -> None:
        """The next seed of this run, in seed order (the driver streams them as it cuts
        chunks, seeds that finished before included)."""
        self.order.append(seed)

    def add(
        self,
        cid: str,
        seeds: dict[str, str],
        rows: list[dict[str, Any]],
        failures: dict[str, str] | None = None,
    ) -> None:
        """A candidate commit: its seeds' outcomes and rows. A seed that this run never
        expects (another run's seed list) keeps its candidate commit for a later run."""
        if cid in self.remaining:
            return
        failures = failures or {}
        by_seed: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_seed.setdefault(row["seed_id"], []).append(row)
        for seed, outcome in seeds.items():
            self.results[seed] = Finished(outcome, cid, by_seed.get(seed, []), failures.get(seed))
        self.remaining[cid] = set(seeds)
        if not seeds:
            self.batch.candidates.append(cid)

    # -- deciding -------------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Seeds with a candidate outcome that wait for an earlier seed."""
        return len(self.results)

    @property
    def pending_rows(self) -> int:
        """Rows not in the dataset yet: waiting for an earlier seed, or decided but not
        committed."""
        return sum(len(f.rows) for f in self.results.values()) + len(self.batch.rows)

    def advance(self) -> int:
        """Finalize every seed whose predecessors all are; commit when due. Returns how many."""
        run: list[tuple[str, Finished]] = []
        while self.order and self.order[0] in self.results:
            seed = self.order.popleft()
            run.append((seed, self.results.pop(seed)))
        if run:
            self._decide(run)
        if self._due():
            self.commit()
        return len(run)

    def _decide(self, run: list[tuple[str, Finished]]) -> None:
        rows = [row for _, finished in run for row in finished.rows]
        dropped: dict[int, tuple[str, str]] = {}  # row position -> (reason, holder)
        self.counters.add("dedup", "seen", len(rows))
        survivors = []
        for i, row in enumerate(rows):
            holder = (
                self.exact.admit(row["question"], row["id"]) if self.exact is not None else None
            )
            if holder is None:
                survivors.append(i)
            else:
                dropped[i] = ("dedup:duplicate", holder)
                self.counters.add("dedup", "dropped:duplicate")
        self.counters.add("dedup", "kept", len(survivors))
        if self.near is not None:
            self.counters.add("near_dedup", "seen", len(survivors))
            verdicts = self.near.admit(
                [rows[i]["question"] for i in survivors], [rows[i]["id"] for i in survivors]
            )
            for i, holder in zip(survivors, verdicts, strict=True):
                if holder is not None:
                    dropped[i] = ("near_dedup:near_duplicate", holder)
                    self.counters.add("near_dedup", "dropped:near_duplicate")
            self.counters.add("near_dedup", "kept", sum(v is None for v in verdicts))
        position = 0
        for seed, finished in run:
            kept = 0
            for row in finished.rows:
                verdict = dropped.get(position)
                position += 1
                if verdict is None:
                    self.batch.rows.append(row)
                    kept += 1
                else:
                    reason, holder = verdict
                    self.batch.rejected.append(
                        {**row, "reject_reason": reason, "reject_detail": holder}
                    )
            if self.batch_since is None:
                self.batch_since = time.monotonic()
            self.batch.seeds[seed] = _final_outcome(finished.outcome, kept)
            if finished.failure is not None:
                self.batch.failures[seed] = finished.failure
            self._seed_final(finished.candidate, seed)
            if len(self.batch.rows) >= self.commit_rows:  # a long run of seeds: several shards
                self.commit()

    def _seed_final(self, cid: str, seed: str) -> None:
        left = self.remaining[cid]
        left.discard(seed)
        if not left:
            self.batch.candidates.append(cid)

    def _due(self) -> bool:
        if len(self.batch.rows) >= self.commit_rows:
            return True
        return self.batch_since is not None and time.monotonic() - self.batch_since >= self.commit_s

    def commit(self) -> str | None:
        """Commit what is decided (nothing when nothing is); remove used-up candidates."""
        batch = self.batch
        if not batch.seeds and not batch.candidates:
            return None
        fid = self.store.write_final(batch)
        self.store.remove_candidates(batch.candidates)
        self.counters.add("writer", "rows", len(batch.rows))
        self.counters.add("writer", "rejected_rows", len(batch.rejected))
        self.counters.add("writer", "shards")
        self.final_commits += 1
        self.batch, self.batch_since = FinalCommit(), None
        return fid


def _final_outcome(candidate: str, kept: int) -> str:
    """A seed whose every row was a duplicate ends ``rejected``; failed stays failed."""
    if candidate == "failed":
        return "failed"
    return "accepted" if kept else "rejected"
