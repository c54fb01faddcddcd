"""``Sandbox``: run untrusted (teacher-written) Python code with limits and isolation. Linux only.

Each run executes ``python -I -B main.py`` (``sys.executable``) in a fresh temporary work dir
(removed afterwards), in its own session, with stdin from the given string and the limits of
``SandboxLimits`` (RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_CORE=0, RLIMIT_NOFILE=64,
RLIMIT_NPROC), ``no_new_privs`` and a wall-clock timeout after which the whole tree is killed.
When this process is root the program runs as a dedicated unprivileged uid/gid from a pool, no
supplementary groups (root is exempt from RLIMIT_NPROC, so this is what stops fork bombs), and
every process of that uid is killed when the run ends; otherwise RLIMIT_NPROC is this uid's
current task count plus ``max_processes``. Programs that detach (double fork, ``setsid``) or
ignore SIGTERM are killed too. ``run`` is cancellation-safe: cancelling it kills the tree and
removes the work dir. Many runs may share one event loop.

Isolation (``Sandbox.isolation``), probed once per process with a trivial program:

* ``"bwrap"``: bubblewrap with new user/pid/net/ipc/uts/cgroup namespaces, the filesystem
  read-only except the work dir, private ``/tmp`` (size-capped), ``/dev``, ``/proc``, an empty
  ``/run``; no network at all (only a loopback of its own) unless ``network=True``.
* ``"rlimits-only (...)"`` (bubblewrap missing, not working, or ``use_bwrap=False``): limits,
  own session and, as root, the uid drop. There is NO network isolation (``network=False`` is
  not enforced) and NO filesystem isolation beyond Unix permissions: the program can read what
  any user can and write to world-writable places such as ``/tmp`` (as root, its top-level
  leftovers there are deleted after the run). Not running as root it keeps this process's uid,
  so it can read and write everything this process can.

It does NOT validate or rewrite the code, cap total disk use in the work dir (only per-file
size and wall time bound it), or interpret the program's output.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .bwrap import find_bwrap
from .execution import execute
from .launch import MODE_BWRAP, MODE_DIRECT
from .limits import SandboxError, SandboxLimits
from .result import ExecResult

__all__ = ["ExecResult", "Sandbox", "SandboxError", "SandboxLimits"]

T = TypeVar("T")
log = logging.getLogger(__name__)

ISOLATION_BWRAP = "bwrap"
ISOLATION_RLIMITS_ROOT = "rlimits-only (unprivileged pool uid; no network or filesystem isolation)"
ISOLATION_RLIMITS_USER = "rlimits-only (same uid; no network or filesystem isolation)"

_probe_lock = threading.Lock()
_probe_results: dict[str, str | None] = {}  # mode -> None if it works, else why not
_warned_fallback: list[bool] = []


def _run_blocking(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""

    async def main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sandbox") as pool:
        return pool.submit(asyncio.run, main()).result()


def _probe_uncached(mode: str) -> str | None:
    if mode == MODE_BWRAP and find_bwrap() is None:
        return "bubblewrap (bwrap) is not installed"
    limits = SandboxLimits(wall_time_s=30.0)
    res = _run_blocking(lambda: execute(limits, mode, "print(6 * 7)", "", None))
    if res.status == "ok" and res.stdout == "42\n":
        return None
    return f"test run gave status={res.status} returncode={res.returncode}: {res.stderr[-2000:]}"


def probe(mode: str) -> str | None:
    """Whether ``mode`` works on this machine: None, or the reason it does not (cached)."""
    with _probe_lock:
        if mode not in _probe_results:
            _probe_results[mode] = _probe_uncached(mode)
        return _probe_results[mode]


def _choose_mode(use_bwrap: bool | None) -> str:
    if use_bwrap is not False:
        why_not = probe(MODE_BWRAP)
        if why_not is None:
            return MODE_BWRAP
        if use_bwrap:
            raise SandboxError(f"use_bwrap=True but bubblewrap does not work here: {why_not}")
    why_not = probe(MODE_DIRECT)
    if why_not is not None:
        raise SandboxError(f"the sandbox cannot run programs on this machine: {why_not}")
    if use_bwrap is None and not _warned_fallback:
        _warned_fallback.append(True)
        log.warning(
            "sandbox: bubblewrap unavailable (%s); running untrusted code with resource limits "
            "only: NO network or filesystem isolation",
            probe(MODE_BWRAP),
        )
    return MODE_DIRECT


class Sandbox:
    """Runs untrusted Python programs; many runs may go on at once in one event loop."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        work_root: str | os.PathLike[str] | None = None,
    ) -> None:
        """``work_root``: where work dirs are created (default: the system temp dir); when
        running as root it must be enterable by other users. Probes isolation once per process
        and raises ``SandboxError`` if ``use_bwrap=True`` and bubblewrap does not work."""
        self.limits = limits if limits is not None else SandboxLimits()
        self._work_root = os.fspath(work_root) if work_root is not None else None
        self._mode = _choose_mode(self.limits.use_bwrap)

    @property
    def isolation(self) -> str:
        if self._mode == MODE_BWRAP:
            return ISOLATION_BWRAP
        return ISOLATION_RLIMITS_ROOT if os.geteuid() == 0 else ISOLATION_RLIMITS_USER

    async def run(self, code: str, stdin: str = "") -> ExecResult:
        return await execute(self.limits, self._mode, code, stdin, self._work_root)

    def run_sync(self, code: str, stdin: str = "") -> ExecResult:
        return _run_blocking(lambda: self.run(code, stdin))
