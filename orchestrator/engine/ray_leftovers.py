"""Leftovers of a private Ray whose driver is gone: its agent processes and its session dir.

``mathsynth run`` starts a private Ray on 127.0.0.1 (``driver.ensure_ray``). Ray's core
processes share the driver's fate, but when the driver is killed (``kill -9``, OOM) its
dashboard and runtime-env agents outlive it (reparented to init, they stay up for minutes or
more), and every session leaves ``<ray temp dir>/session_*`` behind. So:

* ``record()`` (right after this process started its private Ray) writes
  ``<session dir>/mathsynth-driver.json``: this driver's pid and start time, and every process
  then running under it (pid and start time: a pid is only trusted with its start time, pids are
  reused);
* ``sweep()`` (before the next private Ray starts) visits every session with such a marker whose
  driver is no longer running: it SIGKILLs the recorded processes that still run (same pid, same
  start time) and removes the session dir. Sessions without a marker (other Ray users on the
  machine, test fixtures, ``ray start``), and sessions of a driver that still runs, are left
  alone. After a normal exit or Ctrl-C (``ray.shutdown`` stops every process) only the session
  dir is left, and the next run removes it: at most the last run's logs remain.

Linux only (``/proc``); elsewhere both functions do nothing. What it does NOT do: touch a Ray
cluster the run joined (``RAY_ADDRESS``), or clean sandbox work directories (``sandbox/``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

__all__ = ["MARKER", "current_session_dir", "record", "sweep"]

MARKER = "mathsynth-driver.json"
_PROC = Path("/proc")


def _start_time(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), or None if it does not run."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return int(fields[19])  # field 22 of stat(5): starttime


def _running(entry: dict[str, int]) -> bool:
    return _start_time(entry["pid"]) == entry["start"]


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in _PROC.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            ppid = int(text[text.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _entries(pids: list[int]) -> list[dict[str, int]]:
    entries = []
    for pid in pids:
        start = _start_time(pid)
        if start is not None:
            entries.append({"pid": pid, "start": start})
    return entries


def current_session_dir() -> str | None:
    """The session dir of the Ray this process started (None when unknown)."""
    import ray

    try:  # no public API names it; a Ray without this attribute is simply not marked
        return str(ray._private.worker._global_node.get_session_dir_path())
    except AttributeError:
        return None


def record(session_dir: str | os.PathLike[str] | None) -> None:
    """Mark ``session_dir`` as this driver's private Ray, with the processes under it now."""
    if session_dir is None or not _PROC.is_dir():
        return
    me = os.getpid()
    marker = {
        "driver": _entries([me])[0],
        "processes": _entries(_descendants(me)),
        "written": time.time(),
    }
    with contextlib.suppress(OSError):
        (Path(session_dir) / MARKER).write_text(json.dumps(marker))


def sweep(temp_dir: str | os.PathLike[str]) -> tuple[list[int], list[str]]:
    """Clean the private Ray sessions of drivers that are gone; returns (pids killed, session
    dirs removed)."""
    killed: list[int] = []
    removed: list[str] = []
    if not _PROC.is_dir():
        return killed, removed
    for marker_path in sorted(Path(temp_dir).glob(f"session_*/{MARKER}")):
        try:
            marker = json.loads(marker_path.read_text())
            if _running(marker["driver"]):
                continue
            left = [e for e in marker["processes"] if _running(e)]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for entry in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(entry["pid"], signal.SIGKILL)
                killed.append(entry["pid"])
        session = marker_path.parent
        if session.is_symlink():
            continue
        shutil.rmtree(session, ignore_errors=True)
        removed.append(str(session))
    return killed, removed
