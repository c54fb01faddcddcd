"""Work dirs of the one-sandbox-per-run modes: named after their owner, swept once it is gone.

A work dir is ``<root>/mathsynth-sbx-<pid>-<start>-<random>``, where ``pid`` and ``start`` (the
kernel's start time in clock ticks, field 22 of ``/proc/<pid>/stat``) identify the process that
made it. A run removes its own dir when it ends; a process killed mid-run (SIGKILL, a crash, an
interrupt that never reached the cleanup) cannot, so ``sweep`` removes every such dir whose
owner no longer exists (no process with that pid, or one with another start time: the pid was
reused) and leaves the dirs of live processes alone. It costs one listing of the root and one
``/proc`` read per distinct owner. Dirs of the old naming (no owner in the name) are left alone:
their owner cannot be told. It does NOT kill processes (the uid pool does) and is not used by
the warm pool, which writes nothing to the host's disk.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import stat
import tempfile

PREFIX = "mathsynth-sbx-"
_NAME = re.compile(re.escape(PREFIX) + r"(\d+)-(\d+)-")


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


@functools.cache
def _owner_tag(pid: int) -> str:
    return f"{pid}-{_start_time(pid)}-"


def make(work_root: str | None) -> str:
    """A new work dir owned (by name) by this process."""
    return tempfile.mkdtemp(prefix=PREFIX + _owner_tag(os.getpid()), dir=work_root)


def remove_tree(path: str) -> None:
    """rmtree that also copes with directories the program made unreadable (only matters when
    not root). Symlinks are never followed."""
    shutil.rmtree(path, ignore_errors=True)
    if not os.path.lexists(path):
        return
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            sub = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                if stat.S_ISDIR(os.lstat(sub).st_mode):
                    os.chmod(sub, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def sweep(work_root: str | None) -> list[str]:
    """Remove the work dirs under ``work_root`` (default: the temp dir) whose owner is dead;
    returns their paths."""
    root = work_root if work_root is not None else tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except OSError:
        return []
    alive: dict[tuple[int, int], bool] = {}
    removed = []
    for name in names:
        match = _NAME.match(name)
        if match is None:
            continue
        owner = (int(match[1]), int(match[2]))
        if owner not in alive:
            alive[owner] = _start_time(owner[0]) == owner[1]
        if not alive[owner]:
            path = os.path.join(root, name)
            remove_tree(path)
            removed.append(path)
    return removed
