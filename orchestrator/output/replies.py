"""The reply log: every teacher reply, kept durably in the output, so none is paid for twice.

Each generation worker (each incarnation: a restarted worker gets a new writer) appends one JSON
line per reply, *before* the reply is parsed, under ``_mathsynth/replies/``:

- **local / shared paths**: ``replies-<writer>.jsonl``, opened ``O_APPEND`` and written with one
  ``write`` per line, so a reply is on disk (in the OS's page cache) as soon as it is logged:
  Ctrl-C, a worker crash or ``kill -9`` of the run lose nothing that came back. A line cut by a
  crash mid-write is skipped when the log is read;
- **object stores**: lines are uploaded as ``replies-<writer>-<n>.jsonl`` objects every
  ``flush_s`` seconds and when the worker stops (each object appears whole, like every commit).
  A ``kill -9`` there can lose the replies of the last ``flush_s`` seconds.

A line holds the request's key (``reply_key``: a hash of the model, the rendered messages, the
sampling parameters, the seed and the sample index; never the API key), the seed id, the text,
``finish_reason``, token usage, HTTP attempts and the model that served it.

``ReplyIndex`` reads every log of one or more outputs (``scan``, incrementally: only bytes not
read before) into ``seed id -> [(key, where)]`` and fetches the replies of given seeds
(``lookup``), so the driver hands each chunk its seeds' logged replies and a worker sends only
requests that were never answered.

It does not decide what to ask the teacher, parse replies or clear the log (deleting
``_mathsynth/replies/`` does that).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.core.records import content_hash
from orchestrator.output.store import OutputStore

REPLIES_DIR = "_mathsynth/replies"
KEY_LENGTH = 24


def reply_key(request: dict[str, Any], seed_id: str, sample: int) -> str:
    """The cache key of a chat request: ``request`` is the request body (model, messages,
    sampling parameters; no credentials), ``sample`` the index of this exact request among the
    seed's identical ones (several samples of one prompt are distinct replies)."""
    return content_hash("reply", request, seed_id, sample, length=KEY_LENGTH)


class ReplyWriter:
    """Appends reply lines for one worker incarnation (see the module docstring)."""

    def __init__(self, store: OutputStore, flush_s: float = 5.0) -> None:
        self.storage = store.storage
        self.writer = uuid.uuid4().hex[:16]
        self.flush_s = flush_s
        self.written = 0
        self._fd: int | None = None
        self._buffer: list[bytes] = []
        self._part = 0
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()

    def append(self, line: dict[str, Any]) -> None:
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
        self.written += 1
        if self.storage.local:
            if self._fd is None:
                folder = Path(self.storage.path(REPLIES_DIR))
                folder.mkdir(parents=True, exist_ok=True)
                name = folder / f"replies-{self.writer}.jsonl"
                self._fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(self._fd, data)
            return
        with self._lock:
            self._buffer.append(data)
        if time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        """Object stores: upload what is buffered as one object (nothing to do locally)."""
        with self._lock:
            data, self._buffer = b"".join(self._buffer), []
            self._last_flush = time.monotonic()
            part, self._part = self._part, self._part + (1 if data else 0)
        if data:
            self.storage.put_bytes(f"{REPLIES_DIR}/replies-{self.writer}-{part:06d}.jsonl", data)

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class Where:
    file: str  # full path in its storage
    source: int  # index of the output it belongs to
    offset: int
    length: int


@dataclass
class ReplyIndex:
    """Where every logged reply of some outputs is, by seed (see the module docstring)."""

    stores: Sequence[OutputStore]
    by_seed: dict[str, dict[str, Where]] = field(default_factory=dict)
    _read: dict[str, int] = field(default_factory=dict)  # file -> bytes read so far
    _objects: dict[str, bytes] = field(default_factory=dict)  # a few whole remote objects

    def __len__(self) -> int:
        return sum(len(keys) for keys in self.by_seed.values())

    def scan(self) -> int:
        """Read what was appended since the last scan; returns the replies added."""
        added = 0
        for source, store in enumerate(self.stores):
            for file in store.storage.glob(REPLIES_DIR, "replies-*.jsonl"):
                added += self._scan_file(store, source, file)
        return added

    def _scan_file(self, store: OutputStore, source: int, file: str) -> int:
        start = self._read.get(file, 0)
        data = self._bytes(store, file, start, None)
        end = data.rfind(b"\n") + 1  # a line without its newline is still being written
        self._read[file] = start + end
        added, offset = 0, start
        for raw in data[:end].splitlines(keepends=True):
            try:
                line = json.loads(raw)
                key, seed = line["key"], line["seed_id"]
            except (ValueError, KeyError, TypeError):  # a torn line from a crash: skip it
                offset += len(raw)
                continue
            if key not in self.by_seed.setdefault(seed, {}):
                self.by_seed[seed][key] = Where(file, source, offset, len(raw))
                added += 1
            offset += len(raw)
        return added

    def lookup(self, seed_ids: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """``seed id -> {key: logged reply}`` for the given seeds (those with any)."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for seed in seed_ids:
            for key, where in self.by_seed.get(seed, {}).items():
                out.setdefault(seed, {})[key] = self._line(where)
        return out

    def find(self, key: str) -> dict[str, Any] | None:
        """The logged reply with ``key`` (any seed), or None."""
        for keys in self.by_seed.values():
            where = keys.get(key)
            if where is not None:
                return self._line(where)
        return None

    def _line(self, where: Where) -> dict[str, Any]:
        store = self.stores[where.source]
        return json.loads(self._bytes(store, where.file, where.offset, where.offset + where.length))

    def _bytes(self, store: OutputStore, file: str, start: int, end: int | None) -> bytes:
        """Bytes ``start:end`` of a log file; remote objects (written once, never appended)
        are fetched whole and the last few kept, so a chunk's replies cost one GET a file."""
        if store.storage.local:
            with open(file, "rb") as fh:
                fh.seek(start)
                return fh.read() if end is None else fh.read(end - start)
        data = self._objects.get(file)
        if data is None:
            data = store.storage.fs.cat_file(file)
            if len(self._objects) >= 8:
                self._objects.pop(next(iter(self._objects)))
            self._objects[file] = data
        return data[start:end]
