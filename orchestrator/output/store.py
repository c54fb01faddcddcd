"""The output directory: parquet shards committed atomically, and the ledger read back on resume.

Layout of ``DIR``::

    README.md                      dataset card (``configs:`` -> data/train-*.parquet)
    data/train-<commit>.parquet    accepted rows; its footer metadata is the commit's ledger
    rejected/rejected-<commit>.parquet   dropped rows with reason (not part of the train split)
    verifier/verifier-<commit>.parquet   side split: labelled candidate programs (TinyGSM)
    summary.json                   the last run's accounting
    _mathsynth/commits/<commit>.json   ledger of a commit that kept no rows
    _mathsynth/tmp/                local only: files being written (never read by ``datasets``)

``DIR`` is a local (or shared-filesystem) path or an fsspec URL (``s3://``, ``gs://``); see
``orchestrator.output.storage`` for how each backend makes a file visible in one step. A commit is one
such step: the data file landing in ``data/`` (its footer carries the outcome of every seed in
it: accepted / rejected / failed), or, when the commit kept no rows, its ledger JSON (``datasets``
cannot read zero-row parquet files). Locally the step is a ``rename`` out of ``_mathsynth/tmp/``;
on an object store it is the single upload of the final object (no temp object). Until that
step nothing of the commit is visible, so an interrupted run leaves ``DIR`` consistent.
Rejected and side-split files are written first; one without a matching commit is an orphan and
is removed on the next run (found by listing, which works on object stores too). Other modules
write their small files with ``write_json`` / ``write_text`` and read them back with
``read_json`` / ``read_text``: atomic on every backend.
This module does not decide outcomes, dedup or talk to Ray.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.core.records import Record, content_hash
from orchestrator.output.rows import RowSchema
from orchestrator.output.storage import TMP_DIR, Storage, StorageError, worker_env

LEDGER_KEY = b"mathsynth.ledger"
# Side splits: extra outputs beside the train split (e.g. TinyGSM verifier data: every candidate
# program with a correct/incorrect ``label``). Not deduplicated; written with the same commit.
SIDE_SPLITS = ("verifier",)
# The row schema (columns, typed ``meta`` per method, chat form): ``orchestrator.output.rows``.
GENERIC_ROWS = RowSchema()


@dataclass
class Commit:
    """What one worker finished: seed outcomes, rows and dropped rows."""

    seeds: dict[str, str] = field(default_factory=dict)  # seed_id -> accepted|rejected|failed
    rows: list[Record] = field(default_factory=list)
    rejected: list[Record] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # seed_id -> error
    side: dict[str, list[Record]] = field(default_factory=dict)  # split -> rows

    @property
    def id(self) -> str:
        return content_hash("commit", sorted(self.seeds.items()), [r.id for r in self.rows])


@dataclass
class Ledger:
    """State read back from committed shards."""

    outcomes: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    row_ids: set[str] = field(default_factory=set)
    questions: list[tuple[str, str]] = field(default_factory=list)  # (question, row id)
    shards: int = 0

    @property
    def finished(self) -> set[str]:
        """Seeds that need no more teacher requests (failed ones are retried)."""
        return {s for s, o in self.outcomes.items() if o in ("accepted", "rejected")}


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
        self.storage.makedirs("data", "rejected", TMP_DIR, "_mathsynth/commits")
        self._write_card()

    def write_commit(self, commit: Commit) -> str:
        """Write rejected rows, then the data file (the commit point). Returns the commit id."""
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
        if not commit.rows:  # `datasets` cannot read zero-row parquet files: ledger alone
            self.write_json(f"_mathsynth/commits/{cid}.json", ledger)
            return cid
        table = self.rows.table(commit.rows, "train", {LEDGER_KEY: json.dumps(ledger).encode()})
        self.storage.put_table(f"data/train-{cid}.parquet", table)
        return cid

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

    def _empty_commits(self) -> list[str]:
        return self.storage.glob("_mathsynth/commits", "*.json")

    def commit_ids(self) -> set[str]:
        ids = {_stem(f).removeprefix("train-") for f in self.committed_files()}
        return ids | {_stem(f) for f in self._empty_commits()}

    def read_ledger(self, with_questions: bool = True) -> Ledger:
        """Outcomes of all committed seeds (accepted wins over others), row ids and questions."""
        ledger = Ledger()
        columns = ["id", "question"] if with_questions else ["id"]
        files = self.committed_files()
        for table in self.storage.read_tables(files, columns):  # footer metadata comes along
            meta = table.schema.metadata or {}
            if LEDGER_KEY not in meta:
                continue
            _apply(ledger, json.loads(meta[LEDGER_KEY]))
            ledger.row_ids.update(table.column("id").to_pylist())
            if with_questions:
                ids, texts = table.column("id").to_pylist(), table.column("question").to_pylist()
                ledger.questions.extend(zip(texts, ids, strict=True))
        for file in self._empty_commits():
            _apply(ledger, json.loads(self.storage.fs.cat_file(file)))
        for seed_id in ledger.finished:
            ledger.failures.pop(seed_id, None)
        return ledger

    def cleanup(self) -> list[str]:
        """Remove temp files, and rejected/side files whose commit never landed; returns them."""
        committed = self.commit_ids()
        removed = self.storage.glob(TMP_DIR, "*.tmp")  # only local stores write temp files
        for split in ("rejected", *SIDE_SPLITS):
            removed += [
                p for p in self.files(split) if _stem(p).removeprefix(f"{split}-") not in committed
            ]
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
        text = (
            "---\nconfigs:\n- config_name: default\n  data_files:\n"
            "  - split: train\n    path: data/train-*.parquet\n"
            "- config_name: rejected\n  data_files:\n"
            "  - split: train\n    path: rejected/rejected-*.parquet\n"
            "- config_name: verifier\n  data_files:\n"
            "  - split: train\n    path: verifier/verifier-*.parquet\n---\n\n"
            "# mathsynth dataset\n\nSynthetic math problems with executed, verified answers, "
            "written by [mathsynth](https://github.com/mathsynth/mathsynth). `summary.json` "
            "holds the run's accounting; `rejected/` holds every dropped item with its reason.\n"
        )
        self.write_text("README.md", text)


def _apply(ledger: Ledger, entry: dict[str, Any]) -> None:
    for seed_id, outcome in entry["seeds"].items():
        if ledger.outcomes.get(seed_id) != "accepted":
            ledger.outcomes[seed_id] = outcome
    ledger.failures.update(entry.get("failures", {}))
    ledger.shards += 1


def _stem(path: str) -> str:
    return PurePosixPath(path).stem


def iter_rows(files: Iterable[str | Path]) -> Iterable[dict[str, Any]]:
    for file in files:
        yield from pq.read_table(file).to_pylist()
