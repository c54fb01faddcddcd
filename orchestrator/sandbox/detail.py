"""What of a failed run may be stored as a row's ``reject_detail`` (which the card publishes).

A program's stderr is the program's to write: a hostile one can put anything there, host file
contents included. ``reject_detail`` therefore keeps no text of it, only:

* for an uncaught exception, its type when that is one of Python's built-in exception names
  (``ZeroDivisionError``; anything else reads ``exception``) and the line of the program it was
  raised from when that line exists in the program (``ZeroDivisionError at line 4``);
* for ``sys.exit(n)`` without a traceback, the exit status; for the other statuses, the status
  and the signal (``killed by signal 9``).

What is left is a choice among a few hundred fixed strings per row, as a program can also
choose to fail or not: this closes bulk exfiltration through ``rejected/``, not every covert
channel (the sandbox's filesystem view is what keeps host files out of reach). It does NOT
classify results (``ExecResult.status`` does) and is not used for what a run returns to the
caller, which still gets the whole stderr.
"""

from __future__ import annotations

import builtins
import re

from .result import ExecResult

BUILTIN_EXCEPTIONS = frozenset(
    name
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, BaseException)
)
_FRAME_LINE = re.compile(r'File "[^"\n]*main\.py", line (\d+)')


def _signal_text(result: ExecResult) -> str:
    rc = result.returncode
    return f" by signal {-rc}" if rc is not None and rc < 0 else ""


def reject_detail(result: ExecResult, program: str) -> str | None:
    """A short, program-independent description of why ``result`` failed (None if it did not)."""
    if result.status == "ok":
        return None
    if result.status == "crash":
        return "the sandbox could not run the program"
    if result.status in ("timeout", "killed"):
        return f"{result.status}{_signal_text(result)}"
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    if not lines or not any(ln.startswith("Traceback") for ln in lines):
        return f"exit status {result.returncode}"
    name = lines[-1].split(":", 1)[0].strip()
    kind = name if name in BUILTIN_EXCEPTIONS else "exception"
    frames = [int(n) for n in _FRAME_LINE.findall(result.stderr)]
    if frames and 1 <= frames[-1] <= program.count("\n") + 1:
        return f"{kind} at line {frames[-1]}"
    return kind
