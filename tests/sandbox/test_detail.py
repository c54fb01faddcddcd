"""``reject_detail``: what is stored for a failed run keeps no text the program wrote."""

from __future__ import annotations

import pytest

from orchestrator.sandbox.detail import reject_detail
from orchestrator.sandbox.result import ExecResult

PROGRAM = "x = 1\ny = 2\nz = x / 0\n"
SECRET = "API_KEY=sk-live-0123456789"


def result(status: str, stderr: str = "", rc: int | None = 1) -> ExecResult:
    return ExecResult(status == "ok", "", stderr, rc, status, 0.1, False)


def traceback(last: str, line: int = 3) -> str:
    return f'Traceback (most recent call last):\n  File "/tmp/main.py", line {line}, in <module>\n    z = x / 0\n{last}\n'


@pytest.mark.parametrize(
    ("res", "want"),
    [
        (result("ok", rc=0), None),
        (result("error", traceback("ZeroDivisionError: division by zero")), "ZeroDivisionError at line 3"),
        (result("error", traceback(f"ValueError: {SECRET}")), "ValueError at line 3"),
        (result("error", traceback(f"mymod.{SECRET}Error: {SECRET}")), "exception at line 3"),
        (result("error", traceback(f"{SECRET}: x")), "exception at line 3"),
        (result("error", traceback("KeyError: 'k'", line=123456789)), "KeyError"),
        (result("error", f"{SECRET}\n", rc=3), "exit status 3"),
        (result("timeout", SECRET, rc=None), "timeout"),
        (result("killed", SECRET, rc=-9), "killed by signal 9"),
        (result("crash", f"[sandbox] {SECRET}", rc=None), "the sandbox could not run the program"),
    ],
)  # fmt: skip
def test_detail_has_type_and_line_only(res: ExecResult, want: str | None) -> None:
    detail = reject_detail(res, PROGRAM)
    assert detail == want
    assert detail is None or "sk-live" not in detail
