"""Turning a run's raw outcome into an ``ExecResult``.

``OutputCollector`` is the asyncio protocol of the launcher process: it keeps the first
``max_output_bytes`` of stdout and stderr, drains and drops the rest (so a program printing
gigabytes costs no memory) and signals process exit and pipe closure. ``classify`` maps the
waiter's report (raw wait status), the timeout flag and setup errors to a status using exit
codes and signals only, never message text. It does NOT start or kill processes.
"""

from __future__ import annotations

import asyncio
import os

from .result import ExecResult


class OutputCollector(asyncio.SubprocessProtocol):
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

    def result(self, status: str, rc: int | None, note: str, duration_s: float) -> ExecResult:
        out, err = self.data[1], self.data[2]
        return make_result(out, err, self.truncated, status, rc, note, duration_s)


def make_result(
    stdout: bytes | bytearray,
    stderr: bytes | bytearray,
    truncated: bool,
    status: str,
    rc: int | None,
    note: str,
    duration_s: float,
) -> ExecResult:
    """The ``ExecResult`` of captured output and a classified outcome (see ``classify``)."""
    err = bytes(stderr).decode("utf-8", "replace")
    if note:  # the sandbox's own explanation, for "crash"
        err = f"{err}\n[sandbox] {note}" if err else f"[sandbox] {note}"
    return ExecResult(
        ok=status == "ok",
        stdout=bytes(stdout).decode("utf-8", "replace"),
        stderr=err,
        returncode=rc,
        status=status,
        duration_s=duration_s,
        truncated=truncated,
    )


def classify(
    timed_out: bool,
    started: bool,
    wait_status: int | None,
    setup_error: str | None,
    launcher_rc: int | None,
) -> tuple[str, int | None, str]:
    """``(status, returncode, note)``. ``wait_status`` is the program's raw wait status as
    reported by the waiter (None if it never reported); ``launcher_rc`` is the launcher's
    (or bubblewrap's) return code. The note is only set for ``"crash"``."""
    rc = launcher_rc if wait_status is None else os.waitstatus_to_exitcode(wait_status)
    if timed_out:
        return "timeout", rc, ""
    if setup_error is not None or not started:
        return "crash", rc, setup_error or f"the sandbox did not start (exit status {rc})"
    if wait_status is None:
        return "killed", rc, ""  # the waiter itself was killed before it could report
    if os.WIFSIGNALED(wait_status):
        return "killed", rc, ""
    return ("ok" if rc == 0 else "error"), rc, ""
