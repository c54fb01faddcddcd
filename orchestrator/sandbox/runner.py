"""``Sandbox``: run untrusted (teacher-written) Python code with limits and isolation. Linux only.

Every run executes the program like ``python -I -B main.py`` (``sys.executable``) in a fresh
work dir, with stdin from the given string and the limits of ``SandboxLimits`` (RLIMIT_AS,
RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_CORE=0, RLIMIT_NOFILE=64, RLIMIT_NPROC), ``no_new_privs`` and a
wall-clock timeout after which its whole process tree is killed; programs that detach (double
fork, ``setsid``) or ignore SIGTERM are killed too. ``run`` is cancellation-safe: cancelling it
kills the tree before it returns. Many runs may go on at once, from any event loop or thread.

Isolation (``Sandbox.isolation``), chosen once per process by running a trivial program:

* ``ISOLATION_POOL`` (root with bubblewrap; the default there): a warm pool of runners
  (``pool``): bubblewrap jails holding a pre-imported interpreter that fork once per program.
  The program sees only the interpreter (``fsview``: its prefixes, read-only, and the shared
  libraries it links), a tmpfs work dir of its own (``/tmp``, mode 0700), fresh ``/dev`` and
  ``/proc``; no network (only a loopback of its own) unless ``network=True``; it runs as a pool
  uid that no other live program has, in a pid and IPC namespace no other live program is in,
  and nothing of any other program is in its memory. Nothing is written to the host's disk.
* ``ISOLATION_BWRAP`` (bubblewrap, not root, or ``warm=False``): a fresh bubblewrap sandbox per
  run (``execution``) with the same filesystem view, new user/pid/net/ipc/uts/cgroup
  namespaces; as root also the pool uid. About 50-100 ms of CPU per run.
* ``"rlimits-only (...)"`` (bubblewrap missing, not working, or ``use_bwrap=False``): limits,
  own session and, as root, the uid drop. There is NO network isolation (``network=False`` is
  not enforced) and NO filesystem isolation beyond Unix permissions: the program can read what
  any user can (world-readable host files included) and write to world-writable places such as
  ``/tmp`` (as root, its top-level leftovers there are deleted after the run). Not running as
  root it keeps this process's uid, so it can read and write everything this process can.

It does NOT validate or rewrite the code, cap total disk use in the work dir beyond the tmpfs
size (pool) or per-file size, or interpret the program's output.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from . import workdirs
from .bwrap import find_bwrap
from .execution import execute
from .launch import MODE_BWRAP, MODE_DIRECT
from .limits import SandboxError, SandboxLimits
from .pool import WarmPool
from .result import ExecResult

__all__ = ["ExecResult", "Sandbox", "SandboxError", "SandboxLimits"]

T = TypeVar("T")
log = logging.getLogger(__name__)

MODE_POOL = "pool"
ISOLATION_POOL = "bwrap (warm pool: one fork per program, own uid and pid namespace)"
ISOLATION_BWRAP = "bwrap"
ISOLATION_RLIMITS_ROOT = "rlimits-only (unprivileged pool uid; no network or filesystem isolation)"
ISOLATION_RLIMITS_USER = "rlimits-only (same uid; no network or filesystem isolation)"

POOL_SIZE = max(2, os.cpu_count() or 2)  # runners per pool: programs running at once

_probe_lock = threading.Lock()
_probe_results: dict[str, str | None] = {}  # mode -> None if it works, else why not
_warned_fallback: list[bool] = []
_pools_lock = threading.Lock()
_pools: dict[str, WarmPool] = {}  # limits (JSON) -> the process's pool for them


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
    if mode in (MODE_BWRAP, MODE_POOL) and find_bwrap() is None:
        return "bubblewrap (bwrap) is not installed"
    if mode == MODE_POOL and os.geteuid() != 0:
        return "the warm pool gives each runner its own uid, which needs root"
    limits = SandboxLimits(wall_time_s=30.0)
    if mode == MODE_POOL:
        pool = WarmPool(limits, 1)
        try:
            res = pool.submit("print(6 * 7)").future.result()
        finally:
            pool.close()
    else:
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


def _choose_mode(use_bwrap: bool | None, warm: bool | None) -> str:
    if use_bwrap is not False and warm is not False:
        why_not = probe(MODE_POOL)
        if why_not is None:
            return MODE_POOL
        if warm:
            raise SandboxError(f"warm=True but the warm pool does not work here: {why_not}")
        if os.geteuid() == 0 and find_bwrap() is not None and not _warned_fallback:
            _warned_fallback.append(True)
            log.warning("sandbox: warm pool unavailable (%s); one sandbox per run", why_not)
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
        warm: bool | None = None,
    ) -> None:
        """``work_root``: where per-run work dirs are created (default: the system temp dir;
        as root it must be enterable by other users; the warm pool does not use it); leftovers
        of dead processes there are removed now. ``warm``: None uses the warm pool when it
        works here, True requires it, False never uses it. Probes isolation once per process
        and raises ``SandboxError`` if ``use_bwrap=True`` (or ``warm=True``) cannot be met."""
        self.limits = limits if limits is not None else SandboxLimits()
        self._work_root = os.fspath(work_root) if work_root is not None else None
        self._mode = _choose_mode(self.limits.use_bwrap, warm)
        self._pool_key = self.limits.model_dump_json()  # the limits are frozen
        workdirs.sweep(self._work_root)

    @property
    def isolation(self) -> str:
        if self._mode == MODE_POOL:
            return ISOLATION_POOL
        if self._mode == MODE_BWRAP:
            return ISOLATION_BWRAP
        return ISOLATION_RLIMITS_ROOT if os.geteuid() == 0 else ISOLATION_RLIMITS_USER

    @property
    def stats(self) -> dict[str, int]:
        """What the warm pool did so far (programs, runner_starts, runner_deaths, reruns),
        shared by every ``Sandbox`` with these limits in this process; {} without a pool."""
        return dict(self._pool().stats) if self._mode == MODE_POOL else {}

    def _pool(self) -> WarmPool:
        key = self._pool_key
        with _pools_lock:
            if key not in _pools or _pools[key].closed:
                _pools[key] = WarmPool(self.limits, POOL_SIZE)
            return _pools[key]

    async def run(self, code: str, stdin: str = "") -> ExecResult:
        if self._mode == MODE_POOL:
            return await self._pool().run(code, stdin)
        return await execute(self.limits, self._mode, code, stdin, self._work_root)

    def run_sync(self, code: str, stdin: str = "") -> ExecResult:
        if self._mode == MODE_POOL:
            return self._pool().submit(code, stdin).future.result()
        return _run_blocking(lambda: self.run(code, stdin))


@atexit.register
def _close_pools() -> None:
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()
