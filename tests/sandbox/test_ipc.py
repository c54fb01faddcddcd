"""IPC objects on the warm pool: a program cannot leave a System V segment, queue or semaphore
set, or a POSIX message queue, for the program that runs after it on the same runner.

By default the runner sets the jail's IPC limits to zero, so creating any of them fails; where
it cannot (``close_ipc`` off here, as where ``/proc/sys`` is read-only), each program gets a
fresh IPC namespace and what it made dies with it. Skipped without root and bubblewrap.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from orchestrator.sandbox import _warm, warm_runner
from tests.sandbox.test_batch import pool_sandbox, run_batches

pytestmark = pytest.mark.timeout(120)

# what is there before it makes anything, then what it could make (IPC_PRIVATE, readable by all)
PROBE = r"""
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
QUEUE = b"/mathsynth-ipc-probe"
before = {k: open(f"/proc/sysvipc/{k}").read().splitlines()[1:] for k in ("shm", "msg", "sem")}
before["mq"] = libc.mq_open(QUEUE, os.O_RDONLY, 0, None) != -1
made = {
    "shm": libc.shmget(0, 4096, 0o1666) != -1,
    "msg": libc.msgget(0, 0o1666) != -1,
    "sem": libc.semget(0, 1, 0o1666) != -1,
    "mq": libc.mq_open(QUEUE, os.O_CREAT | os.O_RDWR, 0o666, None) != -1,
}
print(json.dumps({"before": before, "made": made}))
"""
NOTHING = {"shm": [], "msg": [], "sem": [], "mq": False}


def probe_twice_on_one_runner() -> list[dict[str, Any]]:
    sb = pool_sandbox()
    (results,) = run_batches(sb, [[PROBE, PROBE]], slots=1)
    assert all(r.ok for r in results), results
    assert sb.stats["runner_starts"] == 1  # one runner ran both, one after the other
    return [json.loads(r.stdout) for r in results]


def test_no_program_can_create_ipc_objects() -> None:
    for report in probe_twice_on_one_runner():
        assert report == {"before": NOTHING, "made": dict.fromkeys(NOTHING, False)}


def test_without_the_limits_each_program_gets_a_fresh_ipc_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = warm_runner.runner_config
    monkeypatch.setattr(warm_runner, "runner_config", lambda *a: {**config(*a), "close_ipc": False})
    first, second = probe_twice_on_one_runner()
    assert first["made"] == dict.fromkeys(NOTHING, True)  # this path really allows them...
    assert second["before"] == NOTHING  # ...and the next program sees none of them


GUARD = r"""
import importlib.util, json, os, sys, types
spec = importlib.util.spec_from_file_location("_warm", sys.argv[1])
warm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(warm)
here = os.stat("/proc/self/ns/ipc").st_ino
def limit():
    return open("/proc/sys/kernel/shmmni").read().strip()
refused = warm.Runner.close_ipc(types.SimpleNamespace(cfg={"host_ipc_ns": here}))
after_refusal = limit()
done = warm.Runner.close_ipc(types.SimpleNamespace(cfg={"host_ipc_ns": here + 1}))
print(json.dumps([refused, after_refusal, done, limit()]))
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root")
def test_the_limits_are_never_set_in_the_hosts_ipc_namespace() -> None:
    """Run in an IPC namespace of its own, which plays the host's: the runner's setup refuses
    to touch it (and the real host is never at risk, whatever the code does)."""
    out = subprocess.run(
        ["unshare", "--ipc", sys.executable, "-I", "-c", GUARD, _warm.__file__],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    refused, after_refusal, done, after = json.loads(out)
    assert (refused, done, after) == (False, True, "0")
    assert after_refusal != "0"
