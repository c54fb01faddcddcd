"""What the warm pool keeps and sends per program: the job, its output captures, its image.

``Job`` is one submitted program and its state on the pool's thread; ``Capture`` keeps the
first ``max_output_bytes`` of one output pipe and drains the rest; ``program_image`` is what
the runner's child reads from the memfd (``memfd``): the source and, when it compiles, its code
object. It does NOT talk to runners or schedule anything (``pool`` does).
"""

from __future__ import annotations

import concurrent.futures
import marshal
import os
from typing import TYPE_CHECKING, Any

from . import _warm
from .collect import make_result
from .result import ExecResult

if TYPE_CHECKING:
    from .warm_runner import RunnerProcess

_READ_CHUNK = 65536


class Capture:
    """The first ``cap`` bytes of one pipe; the rest is read and dropped."""

    def __init__(self, fd: int, cap: int) -> None:
        self.fd, self.cap = fd, cap
        self.data = bytearray()
        self.truncated = False
        self.open = True

    def read(self) -> bool:
        """Read what is there; False at EOF."""
        try:
            chunk = os.read(self.fd, _READ_CHUNK)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if len(chunk) > room:
            self.truncated = True
        return True


class Job:
    def __init__(self, code: str, stdin: str) -> None:
        self.code, self.stdin = code, stdin
        self.future: concurrent.futures.Future[ExecResult] = concurrent.futures.Future()
        self.captures: list[Capture] = []
        self.report: dict[str, Any] | None = None
        self.runner: RunnerProcess | None = None
        self.deaths = 0
        self.cancelled = False
        self.sent_at = 0.0
        self.deadline = float("inf")

    def result(self, status: str, rc: int | None, note: str, duration: float) -> ExecResult:
        out, err = (c.data for c in self.captures) if self.captures else (b"", b"")
        truncated = any(c.truncated for c in self.captures)
        return make_result(out, err, truncated, status, rc, note, duration)


def program_image(code: str) -> bytes:
    """What the runner's child reads (see ``_warm``): the source's length (8 bytes), the
    source, and its code object (``marshal``) compiled here, where compiling costs a fraction
    of what it costs in a freshly forked child (every page the compiler touches there is
    copied). Source that does not compile goes alone: the child compiles it and reports the
    ``SyntaxError`` as Python would."""
    source = code.encode("utf-8")
    try:
        compiled = marshal.dumps(compile(code, _warm.MAIN_PATH, "exec", dont_inherit=True))
    except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError):
        compiled = b""
    return len(source).to_bytes(8, "little") + source + compiled


def memfd(data: bytes) -> int:
    fd = os.memfd_create("mathsynth-sandbox", os.MFD_CLOEXEC)
    os.pwrite(fd, data, 0)
    return fd
