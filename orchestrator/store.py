"""The output directory: parquet shards committed atomically, and the ledger read back on resume.

Layout of ``DIR``::

    README.md                      dataset card (``configs:`` -> data/train-*.parquet)
    data/train-<commit>.parquet    accepted rows; its footer metadata is the commit's ledger
    rejected/rejected-<commit>.parquet   dropped rows with reason (not part of the train split)
    verifier/verifier-<commit>.parquet   side split: labelled candidate programs (TinyGSM)
    summary.json                   the last run's accounting
    _mathsynth/commits/<commit>.json   ledger of a commit that kept no rows
    _mathsynth/tmp/                files being written (never read by ``datasets``)

A commit is one ``rename``: of the data file into ``data/`` (its footer carries the outcome of
every seed in it: accepted / rejected / failed), or, when the commit kept no rows, of its ledger
JSON (``datasets`` cannot read zero-row parquet files). Until that rename nothing of the commit
is visible, so an interrupted run leaves ``DIR`` consistent. Rejected and side-split files are
renamed first; one without a matching commit is an orphan and is removed on the next run.
This module does not decide outcomes, dedup or talk to Ray.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.records import Record, content_hash

LEDGER_KEY = b"mathsynth.ledger"
MESSAGES_TYPE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
ROW_FIELDS: list[tuple[str, pa.DataType]] = [
    ("id", pa.string()),
    ("seed_id", pa.string()),
    ("method", pa.string()),
    ("question", pa.string()),
    ("code", pa.string()),
    ("answer", pa.string()),
    ("gold_answer", pa.string()),
    ("source", pa.string()),
    ("teacher", pa.string()),
    ("template", pa.string()),
    ("template_hash", pa.string()),
    ("sampling", pa.string()),
    ("created_at", pa.string()),
    ("parent_id", pa.string()),
    ("meta", pa.string()),
    # Chat-form methods (skywork, mumath_code, arithmetic) put these in Record.meta.
    ("solution", pa.string()),
    ("messages", MESSAGES_TYPE),
]
ROW_SCHEMA = pa.schema(ROW_FIELDS)
REJECTED_SCHEMA = pa.schema(
    ROW_FIELDS + [("reject_reason", pa.string()), ("reject_detail", pa.string())]
)
# Side splits: extra outputs beside the train split (e.g. TinyGSM verifier data: every candidate
# program with a correct/incorrect ``label``). Not deduplicated; written with the same commit.
SIDE_SPLITS = ("verifier",)
SIDE_SCHEMA = pa.schema(ROW_FIELDS + [("label", pa.bool_())])
_JSON_FIELDS = ("sampling", "meta")
_META_COLUMNS = ("solution", "messages")  # moved out of meta into their own columns


def record_row(record: Record, schema: pa.Schema = ROW_SCHEMA) -> dict[str, Any]:
    data = record.to_dict()
    for name in (*_META_COLUMNS, "label"):
        data[name] = data["meta"].pop(name, None)
    for name in _JSON_FIELDS:
        data[name] = json.dumps(data[name], sort_keys=True, ensure_ascii=False)
    return {name: data.get(name) for name in schema.names}


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
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.data = self.root / "data"
        self.rejected = self.root / "rejected"
        self.tmp = self.root / "_mathsynth" / "tmp"
        self.commits = self.root / "_mathsynth" / "commits"

    def prepare(self) -> None:
        for folder in (self.data, self.rejected, self.tmp, self.commits):
            folder.mkdir(parents=True, exist_ok=True)
        self._write_card()

    def _atomic_table(self, table: pa.Table, final: Path) -> None:
        tmp = self.tmp / f"{final.name}.{uuid.uuid4().hex}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, final)

    def write_commit(self, commit: Commit) -> str:
        """Write rejected rows, then the data file (the commit point). Returns the commit id."""
        cid = commit.id
        if commit.rejected:
            rows = [record_row(r, REJECTED_SCHEMA) for r in commit.rejected]
            table = pa.Table.from_pylist(rows, schema=REJECTED_SCHEMA)
            self._atomic_table(table, self.rejected / f"rejected-{cid}.parquet")
        for split, records in commit.side.items():
            if split not in SIDE_SPLITS:
                raise ValueError(f"unknown side split {split!r} (known: {SIDE_SPLITS})")
            if records:
                (self.root / split).mkdir(exist_ok=True)
                table = pa.Table.from_pylist(
                    [record_row(r, SIDE_SCHEMA) for r in records], schema=SIDE_SCHEMA
                )
                self._atomic_table(table, self.root / split / f"{split}-{cid}.parquet")
        ledger = {"seeds": commit.seeds, "failures": commit.failures}
        if not commit.rows:  # `datasets` cannot read zero-row parquet files: ledger alone
            self.write_json(f"_mathsynth/commits/{cid}.json", ledger)
            return cid
        schema = ROW_SCHEMA.with_metadata({LEDGER_KEY: json.dumps(ledger).encode()})
        table = pa.Table.from_pylist([record_row(r) for r in commit.rows], schema=schema)
        self._atomic_table(table, self.data / f"train-{cid}.parquet")
        return cid

    def committed_files(self) -> list[Path]:
        return sorted(self.data.glob("train-*.parquet")) if self.data.is_dir() else []

    def commit_ids(self) -> set[str]:
        ids = {f.stem.removeprefix("train-") for f in self.committed_files()}
        return ids | {f.stem for f in self.commits.glob("*.json")} if self.commits.is_dir() else ids

    def _ledger_entries(self) -> list[tuple[dict[str, Any], Path | None]]:
        """(ledger entry, data file or None) for every commit, data-less ones included."""
        entries: list[tuple[dict[str, Any], Path | None]] = []
        for file in self.committed_files():
            meta = pq.read_schema(file).metadata or {}
            if LEDGER_KEY in meta:
                entries.append((json.loads(meta[LEDGER_KEY]), file))
        if self.commits.is_dir():
            entries += [
                (json.loads(f.read_text()), None) for f in sorted(self.commits.glob("*.json"))
            ]
        return entries

    def read_ledger(self, with_questions: bool = True) -> Ledger:
        """Outcomes of all committed seeds (accepted wins over others), row ids and questions."""
        ledger = Ledger()
        for entry, file in self._ledger_entries():
            for seed_id, outcome in entry["seeds"].items():
                if ledger.outcomes.get(seed_id) != "accepted":
                    ledger.outcomes[seed_id] = outcome
            ledger.failures.update(entry.get("failures", {}))
            ledger.shards += 1
            if file is None:
                continue
            columns = ["id", "question"] if with_questions else ["id"]
            table = pq.read_table(file, columns=columns)
            ledger.row_ids.update(table.column("id").to_pylist())
            if with_questions:
                ids, texts = table.column("id").to_pylist(), table.column("question").to_pylist()
                ledger.questions.extend(zip(texts, ids, strict=True))
        for seed_id in ledger.finished:
            ledger.failures.pop(seed_id, None)
        return ledger

    def cleanup(self) -> list[Path]:
        """Remove temp files, and rejected/side files whose commit never landed; returns them."""
        committed = self.commit_ids()
        removed = list(self.tmp.glob("*.tmp")) if self.tmp.is_dir() else []
        for split in ("rejected", *SIDE_SPLITS):
            folder = self.root / split
            if folder.is_dir():
                removed += [
                    p
                    for p in folder.glob(f"{split}-*.parquet")
                    if p.stem.removeprefix(f"{split}-") not in committed
                ]
        for path in removed:
            path.unlink(missing_ok=True)
        return removed

    def write_json(self, name: str, payload: dict[str, Any]) -> Path:
        final = self.root / name
        tmp = self.tmp / f"{final.name}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, final)
        return final

    def _write_card(self) -> None:
        card = self.root / "README.md"
        if card.exists():
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
        tmp = self.tmp / "README.md.tmp"
        tmp.write_text(text)
        os.replace(tmp, card)


def iter_rows(files: Iterable[Path]) -> Iterable[dict[str, Any]]:
    for file in files:
        yield from pq.read_table(file).to_pylist()
