"""The output directory: parquet shards committed atomically, and what a run leaves there.

Layout of ``DIR``::

    README.md                      dataset card, rewritten after each run (output.card)
    data/train-<id>.parquet        the dataset: deduplicated rows; the footer is a final commit's
                                   ledger (its seeds' outcomes and the candidate commits it used)
    rejected/rejected-<id>.parquet dropped rows with reason (not part of the train split)
    verifier/verifier-<id>.parquet side split: labelled candidate programs (TinyGSM)
    summary.json                   the accounting of every run into DIR
    _mathsynth/candidates/cand-<id>.parquet  a worker's finished seeds and their rows, not yet
                                   deduplicated (``.json`` when it kept no row)
    _mathsynth/commits/<id>.json   a final commit that kept no row
    _mathsynth/tmp/                local only: files being written (never read by ``datasets``)

Two kinds of commit (``orchestrator.output.ledger`` reads them back): a generation worker's
*candidate commit* (``write_candidates``: its rejected and side-split rows, then the candidate
file, the commit point) and the driver finalizer's *final commit* (``write_final``: rows dropped
as duplicates, then the data file or its manifest, the commit point). A candidate commit is
removed once a final commit has used up all of its seeds (``remove_consumed``).

``DIR`` is a local (or shared-filesystem) path or an fsspec URL (``s3://``, ``gs://``); see
``orchestrator.output.storage`` for how each backend makes a file visible in one step: locally a
``rename`` out of ``_mathsynth/tmp/``, on an object store the single upload of the final object.
Until that step nothing of the commit is visible, so an interrupted run leaves ``DIR``
consistent. Rejected and side-split files are written before their commit point; one whose
commit never landed is an orphan, removed on the next run (found by listing, which works on
object stores too). Other modules write their small files with ``write_json`` / ``write_text``
and read them back with ``read_json`` / ``read_text``: atomic on every backend.
This module does not decide outcomes, dedup or talk to Ray.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.core.records import Record, content_hash
from orchestrator.output.ledger import (
    CANDIDATES_DIR,
    FINAL_MANIFESTS_DIR,
    LEDGER_KEY,
    Ledger,
    candidate_files,
    candidate_id,
    read_ledger,
    stem,
)
from orchestrator.output.rows import RowSchema
from orchestrator.output.storage import TMP_DIR, Storage, StorageError, worker_env

# Side splits: extra outputs beside the train split (e.g. TinyGSM verifier data: every candidate
# program with a correct/incorrect ``label``). Not deduplicated; written with the same commit.
SIDE_SPLITS = ("verifier",)
# The row schema (columns, typed ``meta`` per method, chat form): ``orchestrator.output.rows``.
GENERIC_ROWS = RowSchema()


@dataclass
class Commit:
    """What one worker finished (a candidate commit): seed outcomes, rows that passed every
    per-row check (not yet deduplicated), dropped rows and side-split rows."""

    seeds: dict[str, str] = field(default_factory=dict)  # seed_id -> accepted|rejected|failed
    rows: list[Record] = field(default_factory=list)
    rejected: list[Record] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # seed_id -> error
    side: dict[str, list[Record]] = field(default_factory=dict)  # split -> rows

    @property
    def id(self) -> str:
        return content_hash("commit", sorted(self.seeds.items()), [r.id for r in self.rows])


@dataclass
class FinalCommit:
    """What the finalizer decided for a run of seeds (in seed order): the dataset rows (row
    dicts of the ``train`` schema), the rows dropped as duplicates, the seeds' outcomes, and the
    candidate commits whose every seed is now final."""

    seeds: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # ``rejected`` row dicts
    failures: dict[str, str] = field(default_factory=dict)
    candidates: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        rows = [r["id"] for r in self.rows]
        return content_hash("final", sorted(self.seeds.items()), rows, sorted(self.candidates))


class OutputStore:
    """The output dataset at ``location`` (a path or an fsspec URL)."""

    def __init__(self, location: str | Path, rows: RowSchema | None = None) -> None:
        """``rows``: the schema of the rows this store writes (the method's; readers need
        none)."""
        self.storage = Storage(location)
        self.url = self.storage.url
        self.rows = rows or GENERIC_ROWS

    # Local stores only (object stores have no Path): kept for callers that inspect the disk.
    @property
    def root(self) -> Path:
        if not self.storage.local:
            raise StorageError(f"{self.url} is not a local directory; use the store's methods")
        return Path(self.url)

    @property
    def tmp(self) -> Path:
        return self.root / TMP_DIR

    def prepare(self) -> None:
        self.storage.makedirs("data", "rejected", TMP_DIR, FINAL_MANIFESTS_DIR, CANDIDATES_DIR)
        self._write_card()

    def write_candidates(self, commit: Commit) -> tuple[str, list[dict[str, Any]]]:
        """A worker's candidate commit: rejected and side-split rows, then the candidate file
        (the commit point). Returns the commit id and its rows (``train`` row dicts)."""
        cid = commit.id
        if commit.rejected:
            table = self.rows.table(commit.rejected, "rejected")
            self.storage.put_table(f"rejected/rejected-{cid}.parquet", table)
        for split, records in commit.side.items():
            if split not in SIDE_SPLITS:
                raise ValueError(f"unknown side split {split!r} (known: {SIDE_SPLITS})")
            if records:
                self.storage.makedirs(split)
                table = self.rows.table(records, "side")
                self.storage.put_table(f"{split}/{split}-{cid}.parquet", table)
        ledger = {"seeds": commit.seeds, "failures": commit.failures}
        rows = self.rows.dicts(commit.rows, "train")
        self._put_ledgered(f"{CANDIDATES_DIR}/cand-{cid}", rows, ledger, commit.rows)
        return cid, rows

    def write_final(self, final: FinalCommit) -> str:
        """The finalizer's commit: rows dropped as duplicates, then the data file (the commit
        point; its manifest when no row was kept). Returns the commit id."""
        fid = final.id
        if final.rejected:
            table = self.rows.from_dicts(final.rejected, "rejected")
            self.storage.put_table(f"rejected/rejected-{fid}.parquet", table)
        ledger = {"seeds": final.seeds, "failures": final.failures, "candidates": final.candidates}
        if final.rows:
            self._put_ledgered(f"data/train-{fid}", final.rows, ledger)
        else:
            self.write_json(f"{FINAL_MANIFESTS_DIR}/{fid}.json", ledger)
        return fid

    def _put_ledgered(
        self,
        stem: str,
        rows: list[dict[str, Any]],
        ledger: dict[str, Any],
        records: list[Record] | None = None,
    ) -> None:
        """``stem.parquet`` with ``ledger`` in its footer, or ``stem.json`` holding only the
        ledger when there is no row (``datasets`` cannot read zero-row parquet files);
        ``records``: what the rows were made from (a wrong meta type is then named)."""
        if not rows:
            self.write_json(f"{stem}.json", ledger)
            return
        metadata = {LEDGER_KEY: json.dumps(ledger).encode()}
        table = self.rows.from_dicts(rows, "train", metadata, records)
        self.storage.put_table(f"{stem}.parquet", table)

    def candidate_rows(self, cid: str) -> list[dict[str, Any]]:
        """The rows (``train`` row dicts) of candidate commit ``cid``; [] for a manifest."""
        name = f"{CANDIDATES_DIR}/cand-{cid}.parquet"
        if not self.storage.exists(name):
            return []
        table = self.storage.read_table(self.storage.path(name))
        return table.select(self.rows.train.names).to_pylist()

    def remove_candidates(self, cids: Iterable[str]) -> None:
        """Remove candidate commits that final commits have used up."""
        wanted = set(cids)
        self.storage.remove([f for f in candidate_files(self) if candidate_id(f) in wanted])

    def committed_files(self) -> list[str]:
        """Full paths of the committed data files (``uri()`` turns one into an openable URL)."""
        return self.storage.glob("data", "train-*.parquet")

    def files(self, split: str) -> list[str]:
        """Full paths of the parquet files of ``split`` (``data`` is the train split)."""
        prefix = "train" if split == "data" else split
        return self.storage.glob(split, f"{prefix}-*.parquet")

    def uri(self, path: str) -> str:
        return self.storage.uri(path)

    def worker_env(self) -> dict[str, str]:
        """Environment variables Ray workers on other nodes need to open this store (none for
        local paths: a shared filesystem is mounted at the same path on every node)."""
        return {} if self.storage.local else worker_env()

    def read_table(self, path: str, columns: list[str] | None = None) -> pa.Table:
        return self.storage.read_table(path, columns)

    def has_commits(self) -> bool:
        """Whether any commit (final or candidate) landed here."""
        return bool(
            self.committed_files()
            or self.storage.glob(FINAL_MANIFESTS_DIR, "*.json")
            or candidate_files(self)
        )

    def reset_dataset(self) -> int:
        """Remove the dataset (rows, dropped rows, side splits, commits; final commits first,
        so an interrupted reset leaves a consistent, smaller dataset); keep the reply log and
        the run history. Returns how many files went."""
        files = self.committed_files() + self.storage.glob(FINAL_MANIFESTS_DIR, "*.json")
        files += candidate_files(self)
        for split in ("rejected", *SIDE_SPLITS):
            files += self.files(split)
        self.storage.remove(files)
        return len(files)

    def read_ledger(self, with_questions: bool = True) -> Ledger:
        """Outcomes of every committed seed, and the dataset's row ids and questions."""
        return read_ledger(self, with_questions)

    def commit_ids(self, ledger: Ledger | None = None) -> set[str]:
        """Ids of every landed commit, final and candidate (used up ones included)."""
        ledger = ledger or self.read_ledger(with_questions=False)
        finals = {stem(f).removeprefix("train-") for f in self.committed_files()}
        finals |= {stem(f) for f in self.storage.glob(FINAL_MANIFESTS_DIR, "*.json")}
        return finals | set(ledger.candidates) | ledger.consumed

    def cleanup(self) -> list[str]:
        """Remove temp files, rejected/side files whose commit never landed, and candidate
        commits a final commit used up; returns what was removed."""
        ledger = self.read_ledger(with_questions=False)
        committed = self.commit_ids(ledger)
        removed = self.storage.glob(TMP_DIR, "*.tmp")  # only local stores write temp files
        for split in ("rejected", *SIDE_SPLITS):
            removed += [
                p for p in self.files(split) if stem(p).removeprefix(f"{split}-") not in committed
            ]
        removed += [f for f in candidate_files(self) if candidate_id(f) in ledger.consumed]
        self.storage.remove(removed)
        return removed

    def write_text(self, name: str, text: str) -> str:
        """Write the small file ``name`` (relative to the output) atomically; returns its path."""
        return self.storage.put_bytes(name, text.encode())

    def write_json(self, name: str, payload: Any) -> str:
        text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
        return self.write_text(name, text)

    def read_text(self, name: str) -> str | None:
        """The content of ``name``, or None if it was never written."""
        data = self.storage.read_bytes(name)
        return None if data is None else data.decode()

    def read_json(self, name: str) -> Any:
        text = self.read_text(name)
        return None if text is None else json.loads(text)

    def exists(self, name: str) -> bool:
        return self.storage.exists(name)

    def is_output(self) -> bool:
        """Whether a mathsynth run wrote here (object stores have no empty ``data/`` folder)."""
        return self.exists("data") or self.exists("_mathsynth/run.json")

    def _write_card(self) -> None:
        if self.storage.exists("README.md"):
            return
        from orchestrator.output.card import write_card  # the card reads this store

        write_card(self, plots=False)


def iter_rows(files: Iterable[str | Path]) -> Iterable[dict[str, Any]]:
    for file in files:
        yield from pq.read_table(file).to_pylist()
