"""Teacher settings whose replicas are real scripted OpenAI-compatible servers (subprocesses of
real Ray replica actors), and helpers to find and hurt those processes from a test."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from orchestrator.teacher.settings import TeacherSettings

ROOT = Path(__file__).resolve().parents[2]


def scripted_launcher(latency: float, reply: str | None = None, extra: list[str] | None = None):
    cmd = ["{python}", "-m", "tests.support.scripted_server", "--port", "{port}",
           "--latency", str(latency), "--no-record"]  # fmt: skip
    if reply:
        cmd += ["--reply", reply]
    return cmd + list(extra or [])


def replica_teacher(
    replicas: int = 2, latency: float = 0.05, reply: str | None = None, **replica: Any
) -> dict[str, Any]:
    """``teacher:`` section of a ``kind: vllm`` config served by scripted servers on CPU."""
    return {
        "kind": "vllm", "model": "scripted", "replicas": replicas,
        "max_attempts": 3, "backoff_initial_s": 0.05, "backoff_max_s": 0.2,
        "read_timeout_s": 30, "connect_timeout_s": 5,
        "replica": {
            "launcher": scripted_launcher(latency, reply, replica.pop("extra", None)),
            "num_gpus": 0, "num_cpus": 0, "env": {"PYTHONPATH": str(ROOT)},
            "health_interval_s": 0.3, "health_timeout_s": 1.0, "unhealthy_after": 2,
            "startup_timeout_s": 60, "poll_s": 0.2, **replica,
        },
    }  # fmt: skip


def settings(**kwargs: Any) -> TeacherSettings:
    return TeacherSettings.model_validate(replica_teacher(**kwargs))


def wait_for(predicate, timeout: float, what: str, every: float = 0.1) -> Any:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone). Linux /proc, no psutil needed."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def find_processes(*words: str) -> list[int]:
    """Pids whose command line holds every one of ``words`` as an argument."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = {a.decode(errors="replace") for a in argv}
        if all(w in args for w in words) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def has_established_tcp(pid: int) -> bool:
    """True when ``pid`` holds an ESTABLISHED TCP socket (a client is connected to it)."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(f[3] == "01" and f[9] in inodes for f in (ln.split() for ln in lines))
