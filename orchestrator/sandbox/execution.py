"""One sandboxed run: prepare, start, watch, kill, collect, clean up.

``execute`` writes the code to ``main.py`` in a fresh work dir, starts the launcher
(``_child.py``) in a new session with the limits, feeds stdin, keeps at most
``max_output_bytes`` of stdout/stderr while draining the rest, and enforces the wall time. When
the program ends, times out or the awaiting task is cancelled, every process of the run is
SIGKILLed (process group; all processes of the run's pool uid when root; processes carrying the
run's environment marker otherwise; the pid namespace under bubblewrap), the work dir is removed
and the uid released. It does NOT choose between bubblewrap and the fallback (``runner`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import secrets
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import _child, identity, procs
from .bwrap import bwrap_argv, find_bwrap
from .limits import SandboxError, SandboxLimits
from .result import ExecResult

MODE_BWRAP = "bwrap"
MODE_DIRECT = "direct"
WORKDIR_PREFIX = "mathsynth-sbx-"
MARKER_VAR = "MATHSYNTH_SANDBOX_RUN"
_CHILD_SOURCE = Path(_child.__file__).read_text(encoding="utf-8")
_HELPER_TASKS = {MODE_BWRAP: 2, MODE_DIRECT: 1}  # bwrap + waiter | waiter
_DRAIN_GRACE_S = 1.0
_SHARED_WRITABLE = ["/tmp", "/var/tmp", "/dev/shm", tempfile.gettempdir()]
_PATH = "/usr/local/bin:/usr/bin:/bin"

_exposure: tuple[list[str], list[str]] | None = None


def _exposure_plan() -> tuple[list[str], list[str]]:
    global _exposure
    if _exposure is None:
        _exposure = identity.exposure_plan(identity.interpreter_dirs())
    return _exposure


class _Collector(asyncio.SubprocessProtocol):
    """Keeps the first ``cap`` bytes of stdout/stderr, discards (but drains) the rest."""

    def __init__(self, loop: asyncio.AbstractEventLoop, cap: int) -> None:
        self.cap = cap
        self.data = {1: bytearray(), 2: bytearray()}
        self.truncated = False
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed = {1: loop.create_future(), 2: loop.create_future()}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buf = self.data[fd]
        room = self.cap - len(buf)
        if room > 0:
            buf += data[:room]
        if len(data) > room:
            self.truncated = True

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        fut = self.closed.get(fd)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def _rlimits(limits: SandboxLimits, mode: str, ident: identity.Identity | None) -> list[list[int]]:
    mem = limits.memory_mb * 2**20
    fsize = limits.max_file_mb * 2**20
    nproc = limits.max_processes + _HELPER_TASKS[mode]
    if ident is None:  # RLIMIT_NPROC counts every task of the uid, ours included
        nproc += procs.count_tasks(os.getuid())
    return [
        [resource.RLIMIT_AS, mem, mem],
        [resource.RLIMIT_CPU, limits.cpu_time_s, limits.cpu_time_s + 1],
        [resource.RLIMIT_FSIZE, fsize, fsize],
        [resource.RLIMIT_CORE, 0, 0],
        [resource.RLIMIT_NOFILE, 64, 64],
        [resource.RLIMIT_NPROC, nproc, nproc],
    ]


def _parse_status(data: bytes) -> tuple[bool, int | None, str | None]:
    """``(started, wait_status, setup_error)`` from the status pipe (see ``_child``)."""
    started, wait_status, error = False, None, None
    i = 0
    while i < len(data):
        tag = data[i : i + 1]
        if tag == b"S":
            started, i = True, i + 1
            continue
        if tag not in (b"E", b"R"):
            break
        end = data.find(b"\n", i)
        end = len(data) if end < 0 else end
        body, i = data[i + 1 : end], end + 1
        if tag == b"E":
            error = body.decode("utf-8", "replace")
        elif body.isdigit():
            wait_status = int(body)
    return started, wait_status, error


class _Run:
    def __init__(self, limits: SandboxLimits, mode: str, work_root: str | None) -> None:
        self.limits, self.mode, self.work_root = limits, mode, work_root
        self.ident: identity.Identity | None = None
        self.workdir: str | None = None
        self.transport: asyncio.SubprocessTransport | None = None
        self.status_r = self.status_w = -1
        self.marker = f"{MARKER_VAR}={secrets.token_hex(12)}"
        self.clean = False
        self._kill_lock = threading.Lock()

    def prepare(self, code: str) -> list[str]:
        """Work dir, uid, status pipe; returns the launcher's argv."""
        hide, keep = _exposure_plan() if os.geteuid() == 0 else ([], [])
        if os.geteuid() == 0:
            self.ident = identity.acquire_identity()
        self.workdir = tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=self.work_root)
        main = os.path.join(self.workdir, "main.py")
        Path(main).write_text(code, encoding="utf-8")
        if self.ident is not None:
            os.chown(main, self.ident.uid, self.ident.gid)
            os.chown(self.workdir, self.ident.uid, self.ident.gid)
        self.status_r, self.status_w = os.pipe()
        key, _, value = self.marker.partition("=")
        env = {"PATH": _PATH, "HOME": self.workdir, "TMPDIR": self.workdir, "LANG": "C.UTF-8"}
        env |= {"PYTHONDONTWRITEBYTECODE": "1", key: value}
        env |= {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        program = [sys.executable, "-I", "-B", "main.py"]
        exec_argv = None
        if self.mode == MODE_BWRAP:
            bwrap = find_bwrap()
            if bwrap is None:
                raise SandboxError("bubblewrap (bwrap) is not installed")
            waiter = [sys.executable, "-I", "-S", "-c", _CHILD_SOURCE, "wait", str(self.status_w)]
            exec_argv = bwrap_argv(
                bwrap,
                workdir=self.workdir,
                env=env,
                network=self.limits.network,
                tmp_size_bytes=max(4 * self.limits.max_file_mb, 16) * 2**20,
                ro_paths=identity.interpreter_dirs(),
                command=[*waiter, "--", *program],
            )
        config: dict[str, Any] = {
            "status_fd": self.status_w,
            "parent_pid": os.getpid(),
            "hide": hide,
            "keep": keep,
            "uid": None if self.ident is None else self.ident.uid,
            "gid": None if self.ident is None else self.ident.gid,
            "rlimits": _rlimits(self.limits, self.mode, self.ident),
            "cwd": self.workdir,
            "exec": exec_argv,
            "program": program,
            "env": env,
        }
        return [sys.executable, "-I", "-S", "-c", _CHILD_SOURCE, "launch", json.dumps(config)]

    def _killpg_if_running(self) -> None:
        # Only while the leader is unreaped: its pid (= the group id) cannot be reused then.
        if self.transport is not None and self.transport.get_returncode() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.transport.get_pid(), signal.SIGKILL)

    def kill_all(self) -> None:
        """SIGKILL every process of the run (idempotent, blocking, usually a few ms)."""
        with self._kill_lock:
            self._kill_all()

    def _stop_from_the_top(self) -> None:
        """Timeout or cancellation: end the run through the waiter so that every process is
        reaped by its own parent (nothing left for the host's init to collect): under bubblewrap
        SIGKILL the waiter (bwrap's child, init of the pid namespace: the kernel kills the rest);
        in the fallback SIGTERM the waiter (it kills and reaps its tree). Then wait up to a
        second for the launcher to exit."""
        t = self.transport
        if t is None or t.get_returncode() is not None:
            return
        pid = t.get_pid()
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return
        try:
            if self.mode == MODE_BWRAP:
                procs.kill_matching(procs.child_matcher(pid), timeout_s=0.5)
            else:
                signal.pidfd_send_signal(pidfd, signal.SIGTERM)
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.poll(1000)
        except ProcessLookupError:
            pass
        finally:
            os.close(pidfd)

    def _kill_all(self) -> None:
        self._stop_from_the_top()
        self._killpg_if_running()
        if self.clean:
            return
        if self.ident is not None:
            self.clean = procs.kill_matching(procs.uid_matcher(self.ident.uid))
        elif self.mode == MODE_DIRECT:
            marker = self.marker.encode()
            self.clean = procs.kill_matching(procs.marker_matcher(os.getuid(), marker))
        else:  # bubblewrap: the pid namespace died with its init, or with bwrap (group kill)
            self.clean = True

    def cleanup(self) -> None:
        """Kill, then remove every trace of the run. Safe to call more than once."""
        self.kill_all()
        if self.transport is not None:
            self.transport.close()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        if self.ident is not None:
            if self.clean and self.mode == MODE_DIRECT:
                identity.remove_owned_entries(self.ident.uid, _SHARED_WRITABLE)
            self.ident.release(clean=self.clean)
            self.ident = None
        for fd in (self.status_r, self.status_w):
            if fd >= 0:
                os.close(fd)
        self.status_r = self.status_w = -1

    def close_status_writer(self) -> None:
        os.close(self.status_w)
        self.status_w = -1

    def read_status(self) -> bytes:
        os.set_blocking(self.status_r, False)
        chunks = []
        while True:
            try:
                chunk = os.read(self.status_r, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def _result(
    run: _Run, col: _Collector, timed_out: bool, start: float, note: str = ""
) -> ExecResult:
    started, wait_status, error = (False, None, None) if note else _parse_status(run.read_status())
    rc = None if run.transport is None else run.transport.get_returncode()
    if wait_status is not None:
        rc = os.waitstatus_to_exitcode(wait_status)
    if timed_out:
        status = "timeout"
    elif note or error is not None or not started:
        status = "crash"
        note = note or error or f"the sandbox did not start (launcher exit status {rc})"
    elif wait_status is None:
        status = "killed"  # the waiter itself was killed before it could report
    elif os.WIFSIGNALED(wait_status):
        status = "killed"
    else:
        status = "ok" if rc == 0 else "error"
    stderr = bytes(col.data[2]).decode("utf-8", "replace")
    if note:
        stderr = f"{stderr}\n[sandbox] {note}" if stderr else f"[sandbox] {note}"
    return ExecResult(
        ok=status == "ok",
        stdout=bytes(col.data[1]).decode("utf-8", "replace"),
        stderr=stderr,
        returncode=rc,
        status=status,
        duration_s=time.monotonic() - start,
        truncated=col.truncated,
    )


async def execute(
    limits: SandboxLimits, mode: str, code: str, stdin: str, work_root: str | None
) -> ExecResult:
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    run = _Run(limits, mode, work_root)
    col = _Collector(loop, limits.max_output_bytes)
    try:
        try:
            argv = run.prepare(code)
            transport, _ = await loop.subprocess_exec(
                lambda: col,
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                pass_fds=(run.status_w,),
                cwd=run.workdir,
                env={"PATH": _PATH, "LANG": "C.UTF-8"},
            )
        except (OSError, SandboxError) as exc:
            return _result(run, col, False, start, note=f"could not start the sandbox: {exc}")
        run.transport = transport
        run.close_status_writer()
        stdin_pipe = transport.get_pipe_transport(0)
        if stdin_pipe is not None:
            if stdin:
                stdin_pipe.write(stdin.encode("utf-8"))
            stdin_pipe.close()
        remaining = max(limits.wall_time_s - (time.monotonic() - start), 0.0)
        done, _ = await asyncio.wait({col.exited}, timeout=remaining)
        timed_out = not done
        await asyncio.to_thread(run.kill_all)
        await asyncio.wait(set(col.closed.values()), timeout=_DRAIN_GRACE_S)
        transport.close()
        await asyncio.wait({col.exited}, timeout=_DRAIN_GRACE_S)
        return _result(run, col, timed_out, start)
    finally:
        run.cleanup()
