"""The output lock on a local directory and on a real S3-compatible server (moto): one holder
at a time, a live holder refuses others, a stale lock (dead process, no heartbeat) is taken
over by exactly one taker, and a holder that lost its lock notices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.output import lock as lock_module
from orchestrator.output.lock import LOCK_NAME, OutputLock, OutputLocked
from orchestrator.output.storage import Storage, StorageError
from tests.support import s3_server as s3

s3_server, s3_env, s3_bucket = s3.s3_server, s3.s3_env, s3.s3_bucket  # fixtures


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return Storage(tmp_path / "out")
    return Storage(f"s3://{request.getfixturevalue('s3_bucket')}/out")


def held(storage: Storage) -> dict:
    raw = storage.read_bytes(LOCK_NAME)
    assert raw is not None
    return json.loads(raw)


def test_one_holder_refuses_another_until_released(storage: Storage) -> None:
    first = OutputLock(storage).acquire()
    try:
        assert held(storage)["owner"] == first.owner
        with pytest.raises(OutputLocked, match=rf"pid {os.getpid()} on host .* last heartbeat"):
            OutputLock(storage).acquire()
        first.refresh()
        assert not first.lost
    finally:
        first.release()
    assert storage.read_bytes(LOCK_NAME) is None
    with OutputLock(storage) as second:
        assert held(storage)["owner"] == second.owner


def test_a_dead_process_lock_on_this_host_is_taken_over(storage: Storage) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = OutputLock(storage)
    stale.info["pid"] = int(dead.stdout)  # a process that has exited
    assert stale._create()
    with OutputLock(storage) as taker:
        assert held(storage)["owner"] == taker.owner
        stale.refresh()
        assert stale.lost  # the old holder notices it lost the lock


def test_a_lock_without_heartbeat_is_taken_over_once(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = OutputLock(storage)
    other.info["host"] = "another-host"  # its pid means nothing here
    assert other._create()
    with pytest.raises(OutputLocked, match="another-host"):  # fresh heartbeat: alive
        OutputLock(storage).acquire()
    now = time.time()
    monkeypatch.setattr(lock_module.time, "time", lambda: now + lock_module.STALE_AFTER_S + 5)
    takers = [OutputLock(storage), OutputLock(storage)]
    assert takers[0]._take_over() or takers[0]._create()  # the first taker wins ...
    assert held(storage)["owner"] == takers[0].owner
    if storage.local:  # ... locally the second one moves nothing it did not judge stale
        assert not takers[1]._create()
    else:  # on S3 the second one's If-Match names a version that is gone
        assert not takers[1]._put_if_match(other._etag)
    assert held(storage)["owner"] == takers[0].owner


def test_the_heartbeat_outlives_a_storage_that_cannot_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk fails the heartbeat's write (a ``StorageError``): the beat thread keeps
    going quietly (it printed a traceback into the run's one-line error before) and beats
    again once the storage can write."""
    storage = Storage(tmp_path / "out")
    monkeypatch.setattr(lock_module, "HEARTBEAT_S", 0.05)
    put_bytes, failed = storage.put_bytes, []

    def full(name: str, data: bytes) -> None:
        failed.append(name)
        raise StorageError(f"cannot write {storage.path(name)}: No space left on device")

    monkeypatch.setattr(storage, "put_bytes", full)
    with OutputLock(storage) as lock:
        deadline = time.monotonic() + 10
        while len(failed) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(failed) >= 3 and lock._thread is not None and lock._thread.is_alive()
        before = held(storage)["heartbeat"]
        monkeypatch.setattr(storage, "put_bytes", put_bytes)
        while held(storage)["heartbeat"] == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert held(storage)["heartbeat"] > before and not lock.lost
