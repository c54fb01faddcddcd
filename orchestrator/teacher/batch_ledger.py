"""Durable records of submitted provider batches, so a rerun polls instead of resubmitting.

One JSON file per batch, ``<out>/_mathsynth/batches/<batch_id>.json`` in the run's output
location (a local path or an fsspec URL: writes go through ``orchestrator.output.storage.Storage``, one
atomic whole-file write each), written right after the provider accepted the batch and before
anyone waits on it, and rewritten when the batch reaches a final status. A record names the
batch, its input file, the ``custom_id`` of every request in it, the endpoint (base URL) it went
to, and the last status seen.

``BatchLedger.index()`` maps each ``custom_id`` to the batch that will answer it: the newest
record holding it, at the same base URL, whose status is not ``failed`` (a failed batch has no
results; its requests are submitted again). Completed records stay, so a run interrupted after
its batch finished but before its rows were committed still gets the results for free.

This module does not talk to the provider, decide retries, or delete anything.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pydantic

from orchestrator.core.strict import StrictModel
from orchestrator.output.storage import Storage

__all__ = ["BATCH_DIR", "BatchLedger", "BatchRecord"]

log = logging.getLogger(__name__)

BATCH_DIR = "_mathsynth/batches"  # relative to the output location
FINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})


class BatchRecord(StrictModel):
    batch_id: str
    input_file_id: str
    base_url: str | None
    custom_ids: list[str]
    status: str
    created_at: float
    output_file_id: str | None = None
    error_file_id: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


class BatchLedger:
    """The batch records under one directory (see module docstring)."""

    def __init__(self, location: Storage | str | Path, folder: str = BATCH_DIR) -> None:
        self.storage = location if isinstance(location, Storage) else Storage(location)
        self.folder = folder

    def save(self, record: BatchRecord) -> str:
        """Write ``record`` (atomically); returns its path."""
        data = (record.model_dump_json(indent=1) + "\n").encode("utf-8")
        return self.storage.put_bytes(f"{self.folder}/{record.batch_id}.json", data)

    def load(self) -> list[BatchRecord]:
        """Every readable record, oldest first; unreadable files are skipped with a warning."""
        records = []
        for path in self.storage.glob(self.folder, "*.json"):
            try:
                records.append(BatchRecord.model_validate_json(self.storage.fs.cat_file(path)))
            except (OSError, ValueError, pydantic.ValidationError) as exc:
                log.warning("ignoring unreadable batch record %s (%s)", path, type(exc).__name__)
        return sorted(records, key=lambda r: (r.created_at, r.batch_id))

    def index(self, base_url: str | None) -> tuple[dict[str, str], dict[str, BatchRecord]]:
        """(custom_id -> batch_id, batch_id -> record) of the usable records at ``base_url``."""
        owner: dict[str, str] = {}
        usable: dict[str, BatchRecord] = {}
        for record in self.load():
            if record.base_url != base_url or record.status == "failed":
                continue
            usable[record.batch_id] = record
            for cid in record.custom_ids:
                owner[cid] = record.batch_id  # newest wins: a resubmission supersedes
        return owner, usable
