"""Finding and killing processes through ``/proc`` (Linux only).

Used by the sandbox to count a uid's tasks (for RLIMIT_NPROC), to find leftovers of a run (by
uid, or by a marker in the environment) and to SIGKILL them without pid-reuse races (pidfd,
re-checked after opening). It does NOT start processes or decide what should be killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    uids: tuple[int, ...]  # real, effective, saved, filesystem
    state: str  # first letter of the State: line ("R", "S", "Z", ...)
    threads: int

    @property
    def alive(self) -> bool:
        """Not a zombie or dead: it can still run code."""
        return self.state not in ("Z", "X")


def read_proc(pid: int) -> ProcInfo | None:
    """The ``/proc/<pid>/status`` facts, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    uids: tuple[int, ...] = ()
    state, threads, ppid = "?", 1, 0
    for line in raw.splitlines():
        if line.startswith(b"Uid:"):
            uids = tuple(int(x) for x in line.split()[1:])
        elif line.startswith(b"State:"):
            state = line.split()[1].decode()
        elif line.startswith(b"Threads:"):
            threads = int(line.split()[1])
        elif line.startswith(b"PPid:"):
            ppid = int(line.split()[1])
    return ProcInfo(pid, ppid, uids, state, threads) if uids else None


def iter_procs() -> Iterator[ProcInfo]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = read_proc(int(name))
            if info is not None:
                yield info


def uids_in_use() -> set[int]:
    """Every uid (real, effective or saved) of any process, zombies included (they still count
    towards RLIMIT_NPROC until reaped)."""
    return {u for p in iter_procs() for u in p.uids[:3]}


def count_tasks(uid: int) -> int:
    """Tasks (threads included, as RLIMIT_NPROC counts them) whose real uid is ``uid``."""
    return sum(p.threads for p in iter_procs() if p.uids[0] == uid)


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return marker in fh.read().split(b"\0")
    except OSError:
        return False


def _kill_verified(pid: int, match: Callable[[ProcInfo], bool]) -> None:
    """SIGKILL ``pid`` if it still matches once a pidfd pins the process (no pid reuse)."""

    def still_matches() -> bool:
        info = read_proc(pid)
        return info is not None and info.alive and match(info)

    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # no pidfd support: checked kill (tiny reuse window)
        if still_matches():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return
    try:
        if still_matches():
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def kill_matching(match: Callable[[ProcInfo], bool], timeout_s: float = 2.0) -> bool:
    """SIGKILL every live process (other than this one) that ``match``es, until none is left.

    Repeats scans because a process may fork between a scan and its kill (a killed process
    cannot fork any more). Returns False if some survived ``timeout_s`` (e.g. stuck in D state).
    """
    deadline = time.monotonic() + timeout_s
    me = os.getpid()
    while True:
        found = [p.pid for p in iter_procs() if p.alive and p.pid != me and match(p)]
        if not found:
            return True
        if time.monotonic() > deadline:
            return False
        for pid in found:
            _kill_verified(pid, match)
        time.sleep(0.002)


def uid_matcher(uid: int) -> Callable[[ProcInfo], bool]:
    """Processes with ``uid`` as real, effective or saved uid."""
    return lambda info: uid in info.uids[:3]


def child_matcher(ppid: int) -> Callable[[ProcInfo], bool]:
    """Direct children of ``ppid``."""
    return lambda info: info.ppid == ppid


def marker_matcher(uid: int, marker: bytes) -> Callable[[ProcInfo], bool]:
    """Processes of real uid ``uid`` whose environment holds the exact entry ``marker``."""
    return lambda info: info.uids[0] == uid and _has_marker(info.pid, marker)
