"""``WarmPool``: programs run on warm runners (``_warm``), one fork per program.

Up to ``size`` runners (bubblewrap jails with a pool uid each, ``warm_runner``) start on demand
and stay; each runs one program at a time, so no two live programs share a process, uid, pid or
IPC namespace or work dir. Per program the host hands a runner a memfd with the program (and
one with stdin), and the write ends of two pipes whose output it reads itself (the first
``max_output_bytes`` of each kept, the rest drained). The runner enforces the wall time and
kills the program's whole tree before it reports; a result is complete once that report is in
and both pipes are at EOF. All of it runs on one thread (``sandbox-pool``) around a selector:
callers on any thread or event loop submit and wait on a ``concurrent.futures.Future``, and
cleanup costs their event loop nothing.

Failures: a runner that dies while running a program (killed from outside) is replaced and that
program alone runs once more; a second death, or a runner silent for ``wall_time_s +
WATCHDOG_SLACK_S`` (then killed), ends it as ``crash`` or ``timeout``. When runners cannot be
started, programs that no live runner will take end as ``crash`` with the reason (new starts
pause ``START_BACKOFF_S``). It does NOT decide whether the pool works on this machine
(``runner`` probes it) or judge results.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import selectors
import socket
import threading
import time

from .collect import classify
from .limits import SandboxError, SandboxLimits
from .pool_job import Capture, Job, memfd, program_image
from .result import ExecResult
from .warm_runner import RunnerProcess

log = logging.getLogger(__name__)
WATCHDOG_SLACK_S = 10.0
START_BACKOFF_S = 1.0


class WarmPool:
    def __init__(self, limits: SandboxLimits, size: int) -> None:
        self.limits, self.size = limits, max(1, size)
        self._lock = threading.Lock()
        self._commands: collections.deque[tuple[str, Job | None]] = collections.deque()
        self.closed = False  # no more submissions
        self._wake_r, self._wake_w = socket.socketpair()
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._queue: collections.deque[Job] = collections.deque()
        self._runners: list[RunnerProcess] = []
        self._null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        # programs sent, runner_starts, runner_deaths (while running a program), reruns
        self.stats: collections.Counter[str] = collections.Counter()
        self._no_start_until = 0.0  # after a failed runner start, the next waits a little
        self._start_error = ""
        self._thread = threading.Thread(target=self._loop, name="sandbox-pool", daemon=True)
        self._thread.start()

    # -- any thread --------------------------------------------------------------------------

    def submit(self, code: str, stdin: str = "") -> Job:
        job = Job(code, stdin)
        self._post("run", job)
        return job

    def cancel(self, job: Job) -> None:
        """Kill ``job``'s program (or drop it if still queued); its future ends soon after."""
        self._post("cancel", job)

    def close(self) -> None:
        """Kill every runner and fail what is pending. Idempotent."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._commands.append(("close", None))
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    async def run(self, code: str, stdin: str = "") -> ExecResult:
        """``submit`` and wait; cancelling kills the program and waits for it to be gone."""
        job = self.submit(code, stdin)
        waiter = asyncio.wrap_future(job.future)
        try:
            return await asyncio.shield(waiter)
        except asyncio.CancelledError:
            self.cancel(job)
            await asyncio.wait({waiter})
            raise

    def _post(self, kind: str, job: Job) -> None:
        with self._lock:
            if self.closed:
                raise SandboxError("the sandbox pool is closed")
            self._commands.append((kind, job))
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed
            self._wake_w.send(b"x")

    # -- the pool thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while self._take_commands():
                self._dispatch()
                for key, _ in self._sel.select(self._timeout()):
                    kind, obj = key.data
                    if kind == "wake":
                        with contextlib.suppress(BlockingIOError):
                            self._wake_r.recv(4096)
                    elif kind == "runner":
                        self._on_runner(obj)
                    else:
                        self._on_pipe(*obj)
                self._watchdog()
        except BaseException:
            log.exception("sandbox pool failed; its programs end as crash")
        finally:
            self._shutdown()

    def _take_commands(self) -> bool:
        """Apply what other threads posted; False once ``close`` was asked."""
        with self._lock:
            commands, self._commands = self._commands, collections.deque()
        for kind, job in commands:
            if job is None:  # close: nothing is posted after it
                return False
            if kind == "run":
                self._queue.append(job)
            elif job in self._queue:
                self._queue.remove(job)
                job.future.cancel()
            elif job.runner is not None and not job.cancelled:
                job.cancelled = True
                job.runner.send_kill()
        return True

    def _timeout(self) -> float | None:
        deadlines = [r.job.deadline for r in self._runners if r.job is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _dispatch(self) -> None:
        while self._queue:
            idle = next((r for r in self._runners if r.ready and r.job is None), None)
            if idle is not None:
                self._send(idle, self._queue.popleft())
                continue
            starting = sum(not r.ready for r in self._runners)
            if len(self._runners) < self.size and starting < len(self._queue):
                if time.monotonic() >= self._no_start_until:
                    self._start_runner()
                    continue
                if not self._runners:  # nothing would ever take the queue
                    self._fail_queue(self._start_error)
            return

    def _start_runner(self) -> None:
        try:
            runner = RunnerProcess(self.limits)
        except (OSError, SandboxError) as exc:
            self._start_failed(f"could not start the sandbox: {exc}")
            return
        self.stats["runner_starts"] += 1
        self._runners.append(runner)
        self._sel.register(runner.sock, selectors.EVENT_READ, ("runner", runner))

    def _send(self, runner: RunnerProcess, job: Job) -> None:
        code_fd = memfd(program_image(job.code))
        stdin_fd = memfd(job.stdin.encode("utf-8")) if job.stdin else self._null
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            runner.send_program([code_fd, stdin_fd, out_w, err_w])
            sent = True
        except OSError:
            sent = False
        finally:
            for fd in (code_fd, out_w, err_w, *([stdin_fd] if job.stdin else [])):
                os.close(fd)
        cap = self.limits.max_output_bytes
        job.captures = [Capture(out_r, cap), Capture(err_r, cap)]
        for capture in job.captures:
            os.set_blocking(capture.fd, False)
            self._sel.register(capture.fd, selectors.EVENT_READ, ("pipe", (job, capture)))
        runner.job, job.runner = job, runner
        self.stats["programs"] += 1
        job.sent_at = time.monotonic()
        job.deadline = job.sent_at + self.limits.wall_time_s + WATCHDOG_SLACK_S
        if not sent:
            self._runner_gone(runner)

    def _on_runner(self, runner: RunnerProcess) -> None:
        try:
            msg = runner.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            msg = b""
        if msg == b"READY":
            runner.ready = True
        elif msg.startswith(b"D") and runner.job is not None:
            job, runner.job = runner.job, None
            job.report = json.loads(msg[1:])
            self._maybe_finish(job)
        elif msg.startswith(b"E"):
            runner.error = msg[1:].decode("utf-8", "replace")
        elif not msg:
            self._runner_gone(runner)

    def _on_pipe(self, job: Job, capture: Capture) -> None:
        if not capture.read():
            self._close_capture(capture)
            self._maybe_finish(job)

    def _close_capture(self, capture: Capture) -> None:
        if capture.open:
            capture.open = False
            self._sel.unregister(capture.fd)
            os.close(capture.fd)

    def _maybe_finish(self, job: Job) -> None:
        if job.report is None or any(c.open for c in job.captures):
            return
        rep = job.report
        status, rc, note = classify(
            rep["timed_out"], rep["started"], rep["status"], rep["error"], None
        )
        self._finish(job, status, rc, note, float(rep["duration_s"]))

    def _finish(self, job: Job, status: str, rc: int | None, note: str, duration: float) -> None:
        for capture in job.captures:
            self._close_capture(capture)
        job.runner = None
        if not job.future.done():
            job.future.set_result(job.result(status, rc, note, duration))

    def _runner_gone(self, runner: RunnerProcess) -> None:
        """The runner ended (killed, crashed, or failed to start): replace it; its program
        runs once more, alone, unless this already happened to it or it was being stopped."""
        job = runner.job
        self._sel.unregister(runner.sock)
        self._runners.remove(runner)
        runner.close()
        if job is not None:
            self.stats["runner_deaths"] += 1
            job.deaths += 1
            took = time.monotonic() - job.sent_at
            if job.cancelled:
                self._finish(job, "killed", None, "", took)
            elif job.deadline <= time.monotonic():
                self._finish(job, "timeout", None, "", took)
            elif job.deaths >= 2:
                self._finish(job, "crash", None, "the sandbox runner died twice", took)
            else:
                for capture in job.captures:
                    self._close_capture(capture)
                job.captures, job.runner = [], None
                self.stats["reruns"] += 1
                self._queue.appendleft(job)
        elif not runner.ready:
            why = runner.error or f"the sandbox runner exited (status {runner.proc.returncode})"
            self._start_failed(f"could not start the sandbox: {why}")

    def _start_failed(self, why: str) -> None:
        """No new runner for a while; what waits fails now unless a runner is left to run it."""
        self._start_error = why
        self._no_start_until = time.monotonic() + START_BACKOFF_S
        if not self._runners:
            self._fail_queue(why)

    def _watchdog(self) -> None:
        for runner in [r for r in self._runners if r.job and r.job.deadline <= time.monotonic()]:
            self._runner_gone(runner)

    def _fail_queue(self, note: str) -> None:
        while self._queue:
            self._finish(self._queue.popleft(), "crash", None, note, 0.0)

    def _shutdown(self) -> None:
        note = "the sandbox pool was closed"
        with self._lock:
            self.closed = True
            self._queue.extend(j for k, j in self._commands if k == "run" and j is not None)
        for runner in list(self._runners):
            self._runners.remove(runner)
            runner.close()
            if runner.job is not None:
                self._finish(runner.job, "crash", None, note, 0.0)
        self._fail_queue(note)
        self._sel.close()
        os.close(self._null)
        self._wake_r.close()
        self._wake_w.close()
