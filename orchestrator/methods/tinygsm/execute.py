"""Run a TinyGSM program (``def simple_math_problem()``) in the sandbox and keep numeric results.

The harness appended to the teacher's program calls the function and prints one marked JSON
line describing the result; the parent decides. Drop reasons: ``timeout``, ``killed``
(memory/CPU limit), ``runtime_error``, ``no_result``, ``non_numeric``, ``not_finite``,
``too_large``. This module does not compare against gold answers (that is verification).
"""

from __future__ import annotations

import json
import math

from orchestrator.core.records import Record
from orchestrator.engine.steps import ExecuteStage
from orchestrator.sandbox import ExecResult

MARKER = "__MATHSYNTH_RESULT__"
HARNESS = f"""

def __mathsynth_describe(value):
    import json, numbers
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return {{"numeric": False, "type": type(value).__name__}}
    if isinstance(value, numbers.Integral):
        return {{"numeric": True, "int": str(int(value))}}
    return {{"numeric": True, "float": float(value)}}

print()
print({MARKER!r} + __import__("json").dumps(__mathsynth_describe(simple_math_problem())))
"""


def format_number(payload: dict[str, object]) -> str:
    """Canonical text of an executed numeric result: integers exactly, floats to 10 digits,
    integral floats as integers."""
    if "int" in payload:
        return str(payload["int"])
    value = float(payload["float"])  # type: ignore[arg-type]
    if value.is_integer():
        return str(int(value))
    return format(value, ".10g")


class RunProgram(ExecuteStage):
    name = "execute"

    def __init__(self, max_abs_answer: float) -> None:
        self.max_abs_answer = max_abs_answer

    def program(self, record: Record) -> str:
        return (record.code or "") + HARNESS

    def judge(self, record: Record, result: ExecResult) -> str | None:
        if result.status == "timeout":
            return "timeout"
        if result.status in ("killed", "crash"):
            return result.status
        if not result.ok:
            return "runtime_error"
        line = next(
            (ln for ln in reversed(result.stdout.splitlines()) if ln.startswith(MARKER)), None
        )
        if line is None:
            return "no_result"
        try:
            payload = json.loads(line[len(MARKER) :])
        except json.JSONDecodeError:
            return "no_result"
        if not isinstance(payload, dict) or not payload.get("numeric"):
            return "non_numeric"
        if "float" in payload and not math.isfinite(float(payload["float"])):
            return "not_finite"
        answer = format_number(payload)
        if abs(float(answer)) > self.max_abs_answer:
            return "too_large"
        record.answer = answer
        return None
