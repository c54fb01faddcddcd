"""One sandboxed run: prepare, start, watch, stop, collect, clean up.

``execute`` writes the code to ``main.py`` in a fresh work dir (owned by the run's pool uid when
root), starts the launcher (``_child.py``) in a new session, feeds stdin, collects capped
output and enforces the wall time. On timeout or cancellation it stops the run through the
waiter (SIGKILL to the pid namespace's init under bubblewrap, SIGTERM to the waiter otherwise,
which kills and reaps its own tree) so that nothing is left as a zombie for the host's init;
then, whatever happened, it SIGKILLs the process group while the leader is unreaped and every
remaining process of the run (by pool uid when root, by the run's environment marker otherwise),
removes the work dir (and, in the fallback as root, the uid's top-level files in /tmp, /var/tmp,
/dev/shm) and releases the uid. A uid whose processes could not be killed is never reused.
It does NOT choose between bubblewrap and the fallback (``runner`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import select
import signal
import tempfile
import threading
import time
from pathlib import Path

from . import identity, procs, workdirs
from .collect import OutputCollector, classify
from .launch import (
    LAUNCHER_ENV,
    MARKER_VAR,
    MODE_BWRAP,
    MODE_DIRECT,
    exposure_plan,
    launcher_argv,
    parse_status,
)
from .limits import SandboxError, SandboxLimits
from .result import ExecResult

_DRAIN_GRACE_S = 1.0
_SHARED_WRITABLE = ["/tmp", "/var/tmp", "/dev/shm", tempfile.gettempdir()]


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
        hide, keep = exposure_plan() if os.geteuid() == 0 else ([], [])
        if os.geteuid() == 0:
            self.ident = identity.acquire_identity()
        self.workdir = workdirs.make(self.work_root)
        main = os.path.join(self.workdir, "main.py")
        Path(main).write_text(code, encoding="utf-8")
        if self.ident is not None:
            os.chown(main, self.ident.uid, self.ident.gid)
            os.chown(self.workdir, self.ident.uid, self.ident.gid)
        self.status_r, self.status_w = os.pipe()
        return launcher_argv(
            self.limits,
            self.mode,
            workdir=self.workdir,
            ident=self.ident,
            status_fd=self.status_w,
            marker=self.marker,
            hide=hide,
            keep=keep,
        )

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
                if not any(p.ppid == pid for p in procs.iter_procs()):
                    return  # still the launcher, not yet bubblewrap with its child
                procs.kill_matching(procs.child_matcher(pid), timeout_s=0.5)
            else:
                signal.pidfd_send_signal(pidfd, signal.SIGTERM)
                signal.pidfd_send_signal(pidfd, signal.SIGCONT)  # in case the program stopped it
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
            workdirs.remove_tree(self.workdir)
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
    run: _Run, col: OutputCollector, timed_out: bool, start: float, note: str = ""
) -> ExecResult:
    started, wait_status, error = (False, None, None) if note else parse_status(run.read_status())
    error = note or error  # None unless setup failed
    launcher_rc = None if run.transport is None else run.transport.get_returncode()
    status, rc, note = classify(timed_out, started, wait_status, error, launcher_rc)
    return col.result(status, rc, note, time.monotonic() - start)


async def execute(
    limits: SandboxLimits, mode: str, code: str, stdin: str, work_root: str | None
) -> ExecResult:
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    run = _Run(limits, mode, work_root)
    col = OutputCollector(loop, limits.max_output_bytes)
    try:
        try:
            argv = run.prepare(code)
            # Shielded: cancelled inside subprocess_exec, asyncio would kill only the launcher
            # and then wait for pipes that the program's leftovers may hold open.
            spawn = asyncio.ensure_future(
                loop.subprocess_exec(
                    lambda: col,
                    *argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                    pass_fds=(run.status_w,),
                    cwd=run.workdir,
                    env=LAUNCHER_ENV,
                )
            )
            try:
                transport, _ = await asyncio.shield(spawn)
            except asyncio.CancelledError:
                while not spawn.done():  # let it finish (milliseconds), then clean up below
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.shield(spawn)
                if not spawn.cancelled() and spawn.exception() is None:
                    run.transport = spawn.result()[0]
                raise
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
        await asyncio.to_thread(run.kill_all)  # leftovers may hold stdout/stderr open
        await asyncio.wait(set(col.closed.values()), timeout=_DRAIN_GRACE_S)
        transport.close()
        await asyncio.wait({col.exited}, timeout=_DRAIN_GRACE_S)
        return _result(run, col, timed_out, start)
    finally:
        # Kill and clean up off the event loop's thread (the kill may wait up to 1 s for the
        # waiter, removing the work dir is file I/O); on a further cancellation it goes on in
        # its thread.
        await asyncio.shield(asyncio.to_thread(run.cleanup))
