"""The ledger of an output directory: what every seed's outcome is, read back from commits.

Two kinds of commit carry seed outcomes (``orchestrator.output.store`` writes both):

- a **candidate commit** (``_mathsynth/candidates/cand-<id>.parquet``, or ``.json`` when it kept
  no row), made by a generation worker: the seeds it finished (accepted / rejected / failed)
  and their rows that passed every per-row check, not yet deduplicated. Its seeds need no more
  teacher requests, but its rows are not part of the dataset yet;
- a **final commit** (``data/train-<id>.parquet``, or ``_mathsynth/commits/<id>.json`` when
  every row was a duplicate), made by the driver's finalizer (``orchestrator.engine.finalize``):
  the deduplicated rows of a run of seeds, in seed order, and the candidate commits it used up.

``read_ledger`` merges them: a seed is *finished* (no teacher request on resume) once any
commit gives it ``accepted`` or ``rejected``; *failed* seeds are retried; a seed is *final* once
a final commit names it. Rows of the dataset are only those of final commits.

It reads; it writes nothing and decides no outcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from orchestrator.output.integrity import CANDIDATES_DIR, FINAL_MANIFESTS_DIR, read_commit_json

if TYPE_CHECKING:
    from orchestrator.output.store import OutputStore

LEDGER_KEY = b"mathsynth.ledger"
DONE = ("accepted", "rejected")


@dataclass
class Ledger:
    """Seed outcomes and rows read back from an output directory's commits."""

    final: dict[str, str] = field(default_factory=dict)  # seed -> outcome, final commits
    failures: dict[str, str] = field(default_factory=dict)  # seed -> last error (failed seeds)
    candidates: dict[str, dict[str, str]] = field(default_factory=dict)  # cid -> seed outcomes
    consumed: set[str] = field(default_factory=set)  # candidate ids used up by final commits
    row_ids: set[str] = field(default_factory=set)  # rows of the dataset (final commits)
    questions: list[tuple[str, str]] = field(default_factory=list)  # (question, row id)
    shards: int = 0  # final commits

    @property
    def outcomes(self) -> dict[str, str]:
        """Every committed seed's outcome: a final ``accepted``/``rejected`` stands (a seed
        whose rows all turned out duplicates is ``rejected`` even if its candidate said
        ``accepted``); otherwise the best of its commits (``accepted``, then ``rejected``, then
        ``failed``: a failed seed that was retried shows its new outcome)."""
        out: dict[str, str] = {}
        for seeds in [self.final, *self.candidates.values()]:
            for seed, outcome in seeds.items():
                if _rank(outcome) > _rank(out.get(seed)):
                    out[seed] = outcome
        out.update((s, o) for s, o in self.final.items() if o in DONE)
        return out

    @property
    def finished(self) -> set[str]:
        """Seeds that need no more teacher requests (failed ones are retried)."""
        return {s for s, o in self.outcomes.items() if o in DONE}

    @property
    def finalized(self) -> set[str]:
        """Seeds whose rows are in the dataset (or that left none), for good."""
        return {s for s, o in self.final.items() if o in DONE}


def _rank(outcome: str | None) -> int:
    return {"accepted": 3, "rejected": 2, "failed": 1}.get(outcome or "", 0)


def stem(path: str) -> str:
    return PurePosixPath(path).stem


def candidate_id(path: str) -> str:
    return stem(path).removeprefix("cand-")


def read_ledger(store: OutputStore, with_questions: bool = True) -> Ledger:
    """The ledger of ``store`` (see the module docstring)."""
    ledger = Ledger()
    columns = ["id", "question"] if with_questions else ["id"]
    for table in store.storage.read_tables(store.committed_files(), columns):
        meta = table.schema.metadata or {}
        if LEDGER_KEY not in meta:
            continue
        _apply_final(ledger, json.loads(meta[LEDGER_KEY]))
        ids = table.column("id").to_pylist()
        ledger.row_ids.update(ids)
        if with_questions:
            ledger.questions.extend(zip(table.column("question").to_pylist(), ids, strict=True))
    for file in store.storage.glob(FINAL_MANIFESTS_DIR, "*.json"):
        _apply_final(ledger, read_commit_json(store.storage, file))  # CorruptFileError if damaged
    for cid, entry in candidate_ledgers(store).items():
        if cid not in ledger.consumed:
            ledger.candidates[cid] = entry["seeds"]
            ledger.failures.update(entry.get("failures", {}))
    for seed_id in ledger.finished:
        ledger.failures.pop(seed_id, None)
    return ledger


def _apply_final(ledger: Ledger, entry: dict[str, Any]) -> None:
    for seed_id, outcome in entry["seeds"].items():
        if _rank(outcome) >= _rank(ledger.final.get(seed_id)):
            ledger.final[seed_id] = outcome
    ledger.failures.update(entry.get("failures", {}))
    ledger.consumed.update(entry.get("candidates", []))
    ledger.shards += 1


def candidate_files(store: OutputStore) -> list[str]:
    """Every candidate commit on storage (parquet with rows, json without)."""
    return store.storage.glob(CANDIDATES_DIR, "cand-*.parquet") + store.storage.glob(
        CANDIDATES_DIR, "cand-*.json"
    )


def candidate_ledgers(store: OutputStore) -> dict[str, dict[str, Any]]:
    """Candidate id -> its ledger entry (``seeds``, ``failures``), from footers and manifests."""
    out: dict[str, dict[str, Any]] = {}
    for file in candidate_files(store):
        if file.endswith(".json"):
            out[candidate_id(file)] = read_commit_json(store.storage, file)
        else:
            meta = store.storage.read_schema(file).metadata or {}
            if LEDGER_KEY in meta:
                out[candidate_id(file)] = json.loads(meta[LEDGER_KEY])
    return out
