"""Who a sandboxed program runs as, and what that identity must be able to reach.

When this process is root, every run gets a dedicated unprivileged uid/gid from a pool
(``UID_BASE`` + slot; no passwd entry needed). A slot is held with an ``flock`` on a file in a
root-only directory, so concurrent runs in any process on the machine never share a uid (which
keeps RLIMIT_NPROC per run and lets the runner kill "every process of that uid" safely). Uids
that have an account or still have processes (zombies too) are skipped; live processes of an
unlocked pool uid (a run whose owner process died) are killed; a slot whose processes could not
be killed stays locked for the life of this process.

It also works out whether that uid can reach the Python interpreter (e.g. pyenv under ``/root``
is not) and which directories the launcher must cover with a tmpfs to expose it.

It does NOT start processes, nor kill those of a running sandbox (``execution`` does).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import os
import pwd
import shutil
import stat
import tempfile
from dataclasses import dataclass, field

from .limits import SandboxError
from .procs import kill_matching, uid_matcher, uids_in_use

UID_BASE = 60000
UID_POOL_SIZE = 1000

_next_slot = itertools.count()
_quarantined: list[int] = []  # lock fds of uids with unkillable leftovers, never released


@dataclass
class Identity:
    uid: int
    gid: int
    _lock_fd: int = field(repr=False)

    def release(self, clean: bool = True) -> None:
        """Give the uid back; if ``clean`` is False keep it locked forever (leftovers)."""
        if self._lock_fd < 0:
            return
        if clean:
            os.close(self._lock_fd)
        else:
            _quarantined.append(self._lock_fd)
        self._lock_fd = -1


def _lock_dir() -> str:
    base = next((d for d in ("/run", "/var/run") if os.access(d, os.W_OK)), tempfile.gettempdir())
    path = os.path.join(base, "mathsynth-sandbox-uids")
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise SandboxError(f"{path} must be a directory owned by uid {os.geteuid()}, mode 0700")
    return path


@functools.cache
def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def _try_lock(lock_dir: str, uid: int) -> int | None:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(os.path.join(lock_dir, f"{uid}.lock"), flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _sweep_orphaned(lock_dir: str, busy: set[int]) -> None:
    """Kill live processes of pool uids whose lock nobody holds: leftovers of a run whose owner
    process died abruptly (a run holds its uid's lock until all its processes are dead)."""
    for uid in sorted(u for u in busy if UID_BASE <= u < UID_BASE + UID_POOL_SIZE):
        if _has_account(uid):
            continue
        fd = _try_lock(lock_dir, uid)
        if fd is None:
            continue
        try:
            kill_matching(uid_matcher(uid), timeout_s=1.0)
        finally:
            os.close(fd)


def acquire_identity() -> Identity:
    """Lock a free pool uid (root only); uids with processes (even zombies) are avoided."""
    lock_dir = _lock_dir()
    busy = uids_in_use()
    _sweep_orphaned(lock_dir, busy)
    start = next(_next_slot)
    for i in range(UID_POOL_SIZE):
        uid = UID_BASE + (start + i) % UID_POOL_SIZE
        if uid in busy or _has_account(uid):
            continue
        fd = _try_lock(lock_dir, uid)
        if fd is not None:
            return Identity(uid, uid, fd)
    raise SandboxError(f"no free sandbox uid in {UID_BASE}..{UID_BASE + UID_POOL_SIZE - 1}")


def _others_may_enter(path: str) -> bool:
    st = os.stat(path)
    return stat.S_ISDIR(st.st_mode) and bool(st.st_mode & stat.S_IXOTH)


def exposure_plan(needed: list[str]) -> tuple[list[str], list[str]]:
    """``(hide, keep)``: dirs to cover with a tmpfs, and dirs to bind into them, so that an
    unrelated uid reaches every dir in ``needed``. Both empty when nothing is blocked."""
    hide: list[str] = []
    keep: list[str] = []
    for path in needed:
        parts = path.strip(os.sep).split(os.sep)
        ancestors = [os.sep + os.sep.join(parts[:i]) for i in range(1, len(parts))]
        blocked = next((a for a in ancestors if not _others_may_enter(a)), None)
        if not _others_may_enter(os.sep) or not (os.stat(path).st_mode & stat.S_IROTH):
            raise SandboxError(f"{path} is not readable by other users; the sandbox uid needs it")
        if blocked is None:
            continue
        if not _others_may_enter(path):
            raise SandboxError(f"{path} is not enterable by other users; the sandbox uid needs it")
        if blocked not in hide:
            hide.append(blocked)
        keep.append(path)
    hide = [h for h in hide if not any(h.startswith(o + os.sep) for o in hide)]
    return hide, keep


def remove_owned_entries(uid: int, dirs: list[str]) -> None:
    """Delete top-level entries owned by ``uid`` in shared writable dirs such as /tmp."""
    for d in dict.fromkeys(os.path.realpath(x) for x in dirs):
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                if st.st_uid != uid:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue
