"""The tool loop against a real scripted HTTP server and the real sandbox (no Ray): stop at
the code block, execute, append the output, continue; errors and fixes; the call limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.core.sampling import SamplingParams
from orchestrator.engine.context import StepContext
from orchestrator.methods.mumath.toolloop import (
    FIX_REQUEST,
    STOP,
    Trajectory,
    pending_code,
    render_result,
    solve,
)
from orchestrator.sandbox import Sandbox, SandboxLimits
from orchestrator.sandbox.batch import BatchingExecutor
from orchestrator.teacher.client import TeacherClient
from orchestrator.teacher.settings import TeacherSettings
from tests.support.scripted_server import ScriptedServer

INVENTED = "\n```output\n41\n```\nSo the answer is $\\boxed{41}$."  # must be cut by `stop`


def turn(request: dict[str, Any]) -> int:
    return sum(m["role"] == "assistant" for m in request["messages"])


def run_loop(
    reply: Callable[[dict[str, Any], int], str], **options: Any
) -> tuple[Trajectory, list[dict[str, Any]], Any]:
    async def go(base_url: str) -> tuple[Trajectory, Any]:
        settings = TeacherSettings(base_url=base_url, model="scripted", max_attempts=1)
        ctx = StepContext(
            teacher=TeacherClient(settings),
            request_slots=asyncio.Semaphore(4),
            executor=BatchingExecutor(Sandbox(SandboxLimits(wall_time_s=3, cpu_time_s=3)), 2),
        )  # fmt: skip
        try:
            traj = await solve(
                ctx, "Task: test\nProblem: what is 6*7?", SamplingParams(), **options
            )
        finally:
            await ctx.teacher.close()  # type: ignore[union-attr]
        return traj, ctx.counters

    with ScriptedServer(reply=reply) as srv:
        traj, counters = asyncio.run(go(srv.base_url))
        return traj, srv.requests, counters


def test_stop_execute_append_continue() -> None:
    def reply(request: dict[str, Any], index: int) -> str:
        if turn(request) == 0:
            return "Multiply the numbers.\n```python\nprint(6 * 7)\n```" + INVENTED
        assert request["messages"][-1] == {"role": "user", "content": "```output\n42\n```"}
        return "The program printed 42.\n$\\boxed{42}$"

    traj, requests, counters = run_loop(reply, seed=5)
    assert traj.end == "answer" and traj.answer == "42"
    assert traj.tool_calls == 1 and traj.tool_errors == 0 and traj.requests == 2
    assert traj.solution == (
        "Multiply the numbers.\n```python\nprint(6 * 7)\n```\n```output\n42\n```\n"
        "The program printed 42.\n$\\boxed{42}$"
    )
    assert all(r["stop"] == STOP and r["seed"] == 5 for r in requests)
    # the second request continues the conversation: prompt, the code turn, the real output
    assert [m["role"] for m in requests[1]["messages"]] == ["user", "assistant", "user"]
    assert (
        requests[1]["messages"][1]["content"]
        == "Multiply the numbers.\n```python\nprint(6 * 7)\n```"
    )
    assert counters.get("teacher", "requests") == 2


def test_error_is_shown_with_a_fix_request_and_the_fix_runs() -> None:
    def reply(request: dict[str, Any], index: int) -> str:
        t = turn(request)
        if t == 0:
            return "```python\nprint(undefined_name * 7)\n```" + INVENTED
        if t == 1:
            last = request["messages"][-1]["content"]
            assert last.startswith(
                "```output\nNameError: name 'undefined_name' is not defined\n```"
            )
            assert last.endswith(FIX_REQUEST)
            return "The variable was never defined. Fixed:\n```python\nx = 6\nprint(x * 7)\n```"
        assert request["messages"][-1]["content"] == "```output\n42\n```"
        return "$\\boxed{42}$"

    traj, requests, _ = run_loop(reply)
    assert traj.end == "answer" and traj.answer == "42"
    assert traj.tool_calls == 2 and traj.tool_errors == 1 and len(requests) == 3
    assert "NameError" in traj.solution and FIX_REQUEST not in traj.solution
    assert "seed" not in requests[0]


def test_call_limit_ends_the_solution() -> None:
    def reply(request: dict[str, Any], index: int) -> str:
        return f"Step {turn(request)}.\n```python\nprint({turn(request)})\n```" + INVENTED

    traj, requests, _ = run_loop(reply, max_tool_calls=2)
    assert traj.end == "tool_limit" and traj.answer is None
    assert traj.tool_calls == 2 and len(requests) == 3  # the third code block is not run
    assert traj.solution.count("```output") == 2


def test_long_output_is_truncated_and_timeouts_are_errors() -> None:
    def reply(request: dict[str, Any], index: int) -> str:
        t = turn(request)
        if t == 0:
            return "```python\nprint('x' * 5000)\n```"
        if t == 1:
            return "```python\nwhile True:\n    pass\n```"
        return "$\\boxed{0}$"

    traj, requests, _ = run_loop(reply, output_max_chars=100)
    first_output = requests[1]["messages"][-1]["content"]
    assert first_output.startswith("```output\n" + "x" * 100 + "\n... (output truncated)")
    assert "TimeoutError" in requests[2]["messages"][-1]["content"]
    assert traj.tool_errors == 1 and traj.end == "answer"


def test_results_say_which_limit_stopped_the_code() -> None:
    """An endless loop stopped by RLIMIT_CPU (SIGXCPU) before the wall clock is a timeout to
    the teacher too, not a memory error; a real memory error stays one."""
    sandbox = Sandbox(SandboxLimits(wall_time_s=20, cpu_time_s=1, memory_mb=256))
    cpu = sandbox.run_sync("while True:\n    pass")
    memory = sandbox.run_sync("x = bytearray(1 << 30)")
    assert cpu.status == "killed" and render_result(cpu, 100)[0].startswith("TimeoutError")
    assert render_result(memory, 100) == ("MemoryError", True)


def test_chain_of_thought_mode_runs_no_code_and_sends_no_stop() -> None:
    def reply(request: dict[str, Any], index: int) -> str:
        return "Compute:\n```python\nprint(1)\n```\nso $\\boxed{42}$"

    traj, requests, _ = run_loop(reply, tools=False)
    assert traj.tool_calls == 0 and traj.answer == "42" and len(requests) == 1
    assert "stop" not in requests[0]


def test_truncated_reply_and_missing_answer() -> None:
    traj, _, _ = run_loop(lambda r, i: "I do not know.")
    assert traj.end == "no_answer" and traj.answer is None


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Go.\n```python\nprint(1)\n```", "print(1)"),
        ("Go.\n```python\nprint(1)\n```\n\n", "print(1)"),
        ("Go.\n```python\nprint(1)\n```\n```output\n1\n```\n$\\boxed{1}$", "print(1)"),
        ("```python\nprint(1)\n```\nThe answer is $\\boxed{1}$", None),
        ("```python\nprint(1", None),
        ("no code", None),
    ],
)
def test_pending_code(text: str, code: str | None) -> None:
    found = pending_code(text)
    assert (found[1] if found else None) == code
