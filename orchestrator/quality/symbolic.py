"""Symbolic answer equivalence (math-verify) in a child process, under a hard time limit.

math-verify's own timeout uses ``signal.alarm``, which only works in a process's main thread;
off it (an async Ray actor runs its methods in another thread, measured) ``parse``/``verify``
raise ``ValueError`` instead. So the comparison runs in a long-lived child interpreter
(``python -m orchestrator.quality.symbolic``, JSON lines over pipes) and the caller waits with
``select``: past the limit the child is killed (a runaway sympy computation cannot be
interrupted any other way) and the next call starts a new one (~1 s). This works from any
thread; calls are serialised by a lock. The child imports math-verify/sympy once (~1 s,
not counted in a call's limit). Equivalence is checked both ways (``verify`` is asymmetric).
This module does no numeric parsing of its own: ``orchestrator.quality.verify`` does that first.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path

STARTUP_TIMEOUT_S = 120.0


class SymbolicUnavailable(RuntimeError):
    """The child interpreter could not start (math-verify missing or broken)."""


class SymbolicChecker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self.restarts = 0

    def _start(self) -> subprocess.Popen[bytes]:
        root = str(Path(__file__).resolve().parents[2])  # the dir holding orchestrator/
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.quality.symbolic"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, bufsize=0,
        )  # fmt: skip
        self._proc, self._buffer = proc, b""
        if self._read_line(STARTUP_TIMEOUT_S) != "ready":
            self._kill()
            raise SymbolicUnavailable("math-verify child process did not start")
        return proc

    def _read_line(self, timeout_s: float) -> str | None:
        """One line from the child, or None if none came within ``timeout_s``."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], timeout_s)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8")

    def _kill(self, restart: bool = True) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
            self.restarts += restart

    def equal(self, a: str, b: str, timeout_s: float) -> bool | None:
        """True/False, or None when the comparison ran past ``timeout_s`` (child killed)."""
        with self._lock:
            proc = self._proc if self._proc is not None and self._proc.poll() is None else None
            proc = proc or self._start()
            assert proc.stdin is not None
            try:
                proc.stdin.write((json.dumps([a, b]) + "\n").encode("utf-8"))
            except BrokenPipeError:
                self._kill()
                return None
            line = self._read_line(timeout_s)
            if line is None:
                self._kill()
                return None
            return line == "1"

    def close(self) -> None:
        with self._lock:
            self._kill(restart=False)


def _as_latex(text: str) -> str:
    text = text.strip()
    return text if text.startswith(("$", "\\(", "\\[")) else f"${text}$"


def _serve() -> None:
    """Child side: read ``[a, b]`` lines, answer ``1``/``0``."""
    import logging

    logging.disable(logging.WARNING)
    from math_verify import parse, verify

    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for raw in sys.stdin.buffer:
        a, b = json.loads(raw)
        try:
            pa = parse(_as_latex(a), parsing_timeout=None)
            pb = parse(_as_latex(b), parsing_timeout=None)
            ok = bool(pa and pb) and (
                verify(pa, pb, timeout_seconds=None) or verify(pb, pa, timeout_seconds=None)
            )
        except Exception:  # math-verify/sympy raise many types on odd input: "not equal"
            ok = False
        out.write(b"1\n" if ok else b"0\n")
        out.flush()


if __name__ == "__main__":
    _serve()
