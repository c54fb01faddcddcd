"""One run at a time per output: an atomic lock object with a heartbeat and stale-lock takeover.

Two ``mathsynth run``s into the same ``--out`` would each start a private Ray, so nothing on a
cluster would tell them apart; the lock lives on the output's storage instead. ``OutputLock``
creates ``_mathsynth/lock.json`` atomically — locally with ``O_CREAT | O_EXCL``, on S3 with a
conditional PUT (``If-None-Match: *``) —
holding an owner id, host, pid, start time and a heartbeat the holder refreshes every
``HEARTBEAT_S``. A second run finding a live lock is refused with a message naming the holder.
(GCS and other object stores get a check-then-write: not atomic, best effort.)
A lock is stale when its heartbeat is older than ``STALE_AFTER_S`` (a killed or frozen run), or
at once when its holder ran on this host and that process is gone; a stale lock is taken over
atomically (locally by renaming it away, which only one taker can do; on S3 by a PUT that only
succeeds while the object is still the stale one, ``If-Match``). A holder whose heartbeat finds
someone else's lock has lost it (``lost``) and must stop.

It does not decide what a run does with the output, and it does not protect readers
(``stats``, ``show``), which never need it: every commit is atomic on its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from orchestrator.output.storage import Storage, StorageError

LOCK_NAME = "_mathsynth/lock.json"
HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0


class OutputLocked(RuntimeError):
    """Another live run holds the output's lock; the message names it."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


class OutputLock:
    def __init__(self, storage: Storage, command: str = "mathsynth run") -> None:
        self.storage = storage
        self.path = storage.path(LOCK_NAME)
        self.owner = uuid.uuid4().hex
        self.info = {
            "owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
            "command": command, "started": time.time(),
        }  # fmt: skip
        self.lost = False
        self._etag: str | None = None  # S3: the version of the lock we wrote last
        protocol = storage.fs.protocol
        self.s3 = "s3" in ({protocol} if isinstance(protocol, str) else set(protocol))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- taking and giving back ---------------------------------------------------------------

    def acquire(self) -> OutputLock:
        for _ in range(3):  # a takeover races other takers at most a couple of times
            if self._create():
                self._start_heartbeat()
                return self
            held = self._read()
            if held is None:
                continue  # released meanwhile: try again
            if self._stale(held) is None:
                raise OutputLocked(self._refusal(held))
            if self._take_over():
                self._start_heartbeat()
                return self
        raise OutputLocked(f"{self.storage.url}: could not take the output lock (contended)")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        held = self._read()
        if held is not None and held.get("owner") == self.owner:
            self.storage.remove([self.path])

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- storage --------------------------------------------------------------------------------

    def _payload(self) -> bytes:
        return json.dumps({**self.info, "heartbeat": time.time()}).encode()

    def _create(self) -> bool:
        """Write the lock if there is none; False if one exists."""
        data = self._payload()
        if self.storage.local:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return True
        if not self.s3:  # best effort (see the module docstring)
            if self.storage.exists(LOCK_NAME):
                return False
            self.storage.put_bytes(LOCK_NAME, data)
            return True
        try:
            self.storage.fs.pipe_file(self.path, data, mode="create")
        except FileExistsError:
            return False
        self._etag = self._remote_etag()
        return True

    def _read(self) -> dict[str, Any] | None:
        raw = self.storage.read_bytes(LOCK_NAME)
        if raw is None:
            return None
        try:
            held = json.loads(raw)
        except ValueError:  # torn or foreign: judge it by age alone
            held = {}
        return held if isinstance(held, dict) else {}

    def _remote_etag(self) -> str | None:
        self.storage.fs.invalidate_cache(self.path)
        return self.storage.fs.info(self.path).get("ETag")

    def _take_over(self) -> bool:
        """Replace a stale lock so that only one taker wins. True if it is ours now; False to
        try creating it again (locally, after moving it aside) or to re-read it."""
        if self.storage.local:
            aside = f"{self.path}.stale-{self.owner}"
            with contextlib.suppress(FileNotFoundError):  # another taker was first
                os.replace(self.path, aside)
                os.unlink(aside)
            return False
        if not self.s3:
            self.storage.put_bytes(LOCK_NAME, self._payload())
            return True
        return self._put_if_match(self._remote_etag())

    def _put_if_match(self, etag: str | None) -> bool:
        """S3: write our lock only while the object is still version ``etag``."""
        bucket, key, _ = self.storage.fs.split_path(self.path)
        try:
            self.storage.fs.call_s3(
                "put_object", Bucket=bucket, Key=key, Body=self._payload(), IfMatch=etag
            )
        except OSError:  # 412 Precondition Failed: someone else changed it first
            return False
        self._etag = self._remote_etag()
        return True

    # -- judging --------------------------------------------------------------------------------

    def _stale(self, held: dict[str, Any]) -> str | None:
        """Why ``held`` is stale, or None when its holder looks alive."""
        beat = held.get("heartbeat")
        age = time.time() - beat if isinstance(beat, (int, float)) else None
        if age is None:
            age = self._age_of_file()
        if age is not None and age > STALE_AFTER_S:
            return f"no heartbeat for {age:.0f} s"
        pid, here = held.get("pid"), held.get("host") == socket.gethostname()
        if here and isinstance(pid, int) and not _pid_alive(pid):
            return f"process {pid} on this host is gone"
        return None

    def _age_of_file(self) -> float | None:
        with contextlib.suppress(OSError, KeyError, TypeError):
            modified = self.storage.fs.modified(self.path)
            return time.time() - modified.timestamp()
        return None

    def _refusal(self, held: dict[str, Any]) -> str:
        beat = held.get("heartbeat")
        age = f"{time.time() - beat:.0f} s ago" if isinstance(beat, (int, float)) else "unknown"
        return (
            f"{self.storage.url} is being written by another run ({held.get('command', '?')}, "
            f"pid {held.get('pid', '?')} on host {held.get('host', '?')}, last heartbeat {age}); "
            f"wait for it to end, or use another --out. A lock whose heartbeat is older than "
            f"{STALE_AFTER_S:.0f} s is taken over automatically."
        )

    # -- heartbeat ------------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="mathsynth-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            # a storage hiccup or a full disk: the next beat tries again. The run's own writes
            # meet the same fault and stop the run with one error; this thread must not print.
            with contextlib.suppress(OSError, StorageError):
                self.refresh()

    def refresh(self) -> None:
        """Rewrite the heartbeat, or mark the lock ``lost`` if another run holds it now."""
        held = self._read()
        mine = held is not None and held.get("owner") == self.owner
        if mine and self.s3:
            mine = self._put_if_match(self._etag)
        elif mine:
            self.storage.put_bytes(LOCK_NAME, self._payload())
        if not mine:
            self.lost = True
            self._stop.set()
