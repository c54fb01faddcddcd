"""``ExecResult``: what one sandboxed run produced. A plain record; it does not run anything.

``status`` is one of ``STATUSES``: ``"ok"`` (exit 0), ``"error"`` (nonzero exit), ``"timeout"``
(wall time exceeded, tree killed), ``"killed"`` (ended by a signal, e.g. RLIMIT_CPU's SIGXCPU
or a crash in C code), ``"crash"`` (the sandbox itself could not start the program).
"""

from __future__ import annotations

from dataclasses import dataclass

STATUSES = ("ok", "error", "timeout", "killed", "crash")


@dataclass
class ExecResult:
    ok: bool  # exited 0, not killed
    stdout: str
    stderr: str
    returncode: int | None  # exit code, or -N for signal N; None when there is none
    status: str  # one of STATUSES
    duration_s: float
    truncated: bool  # stdout or stderr was cut to max_output_bytes
