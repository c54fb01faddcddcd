"""One code-nested solution: the teacher reasons and writes ```python blocks, mathsynth runs
them in the sandbox and shows the output, until the teacher gives a final ``\\boxed{}``.

The cycle, per teacher turn:

1. generate with the stop sequence ``` ```output ``` (the teacher would start its own output
   block right after a code block; generation stops there, before it invents a result);
2. if the reply ends with a closed ```python block, that is a tool call: the code runs through
   ``ctx.executor`` (the worker's batched sandbox; each block runs on its own, in a fresh
   process) and its stdout (or, on failure, the error's last line), cut to
   ``output_max_chars``, becomes an ```output block;
3. the conversation goes on with a **new user turn** holding the output block (plus, after an
   error, a request to find and fix the mistake). OpenAI-compatible servers do not portably
   continue a partial assistant message (vLLM's ``continue_final_message`` is not standard),
   so each turn is a new assistant message; the stored solution stitches the assistant turns
   and the output blocks into one assistant message, as MuMath-Code trains on;
4. any other reply ends the solution; its last ``\\boxed{}`` is the answer.

A solution that asks for code after ``max_tool_calls`` executions ends as ``tool_limit``; one
cut by ``max_tokens`` as ``truncated`` (with ``teacher.on_length: keep``; with ``retry`` the
turn is re-asked with a larger budget, and a turn still cut, or any cut turn with ``reject``,
ends it as ``length``); one without ``\\boxed{}`` as ``no_answer``. With
``tools=False`` (chain-of-thought data) nothing is executed and no stop sequence is sent.
This module does not choose among samples (``mumath.solve``).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from orchestrator.core.sampling import SamplingParams
from orchestrator.engine.context import StepContext
from orchestrator.engine.teacher_calls import LengthRejected, ask_teacher
from orchestrator.quality.verify import last_boxed, normalize_answer
from orchestrator.sandbox import ExecResult

OUTPUT_FENCE = "```output"
STOP = [OUTPUT_FENCE]
CODE_FENCE = "```python"
FIX_REQUEST = "The code above raised an error. Find the mistake, fix the code and continue."
TRUNCATED = "\n... (output truncated)"


@dataclass
class Trajectory:
    """One sampled solution: stitched text, final answer and how it ended."""

    solution: str
    answer: str | None
    end: str  # answer | no_answer | tool_limit | truncated | length
    tool_calls: int = 0
    tool_errors: int = 0
    requests: int = 0
    model: str = ""
    turns: list[str] = field(default_factory=list)  # the assistant turns as generated
    reply_ids: list[str] = field(default_factory=list)  # their keys in the reply log


def pending_code(text: str) -> tuple[str, str] | None:
    """``(reply up to the end of its last code block, code)`` when the reply ends with a
    closed ```python block (a request to run it), else None. A reply that went on past the
    stop sequence (a server that ignored it) is cut at the first ```output."""
    cut = text.find(OUTPUT_FENCE)
    if cut >= 0:
        text = text[:cut]
    start = text.rfind(CODE_FENCE)
    if start < 0:
        return None
    body_start = text.find("\n", start)
    end = text.find("```", body_start) if body_start >= 0 else -1
    if end < 0 or text[end + 3 :].strip():
        return None  # unclosed (cut off), or prose/answer after the block
    return text[: end + 3], text[body_start + 1 : end].rstrip()


def render_result(result: ExecResult, max_chars: int) -> tuple[str, bool]:
    """The output block's text and whether the code failed."""
    if result.status == "ok":
        out = result.stdout.rstrip()
        if len(out) > max_chars:
            out = out[:max_chars] + TRUNCATED
        return out, False
    if result.status == "timeout":
        return "TimeoutError: the code ran longer than the time limit", True
    if result.status == "killed" and result.returncode == -signal.SIGXCPU:  # RLIMIT_CPU
        return "TimeoutError: the code used up its CPU time limit", True
    if result.status == "killed":
        return "MemoryError: the code was stopped by a memory or CPU limit", True
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    message = lines[-1].strip() if lines else f"the code failed ({result.status})"
    return message[:max_chars], True


async def solve(
    ctx: StepContext,
    prompt: str,
    sampling: SamplingParams,
    *,
    seed: int | None = None,
    tools: bool = True,
    max_tool_calls: int = 4,
    output_max_chars: int = 1000,
) -> Trajectory:
    """Run the tool loop (see module docstring) for one sample."""
    messages = [{"role": "user", "content": prompt}]
    parts: list[str] = []
    traj = Trajectory(solution="", answer=None, end="no_answer")
    while True:
        try:
            completion = await ask_teacher(
                ctx, messages, sampling, stop=STOP if tools else None, seed=seed
            )
        except LengthRejected:  # cut by max_tokens and not kept (teacher.on_length)
            traj.requests += 1
            traj.solution = "\n".join(p for p in parts if p)
            traj.end = "length"
            return traj
        traj.requests += 1
        traj.model = completion.model
        traj.turns.append(completion.text)
        if completion.reply_id is not None:
            traj.reply_ids.append(completion.reply_id)
        request = pending_code(completion.text) if tools else None
        if request is None:
            final = completion.text.strip()
            parts.append(final)
            traj.solution = "\n".join(p for p in parts if p)
            boxed = last_boxed(final)
            if completion.finish_reason == "length":
                traj.end = "truncated"
            elif boxed is not None:
                traj.answer, traj.end = normalize_answer(boxed), "answer"
            return traj
        head, code = request
        if traj.tool_calls >= max_tool_calls:
            traj.solution = "\n".join([*parts, head.strip()])
            traj.end = "tool_limit"
            return traj
        traj.tool_calls += 1
        (result,) = await ctx.executor.run([code])
        output, failed = render_result(result, output_max_chars)
        traj.tool_errors += failed
        block = f"{OUTPUT_FENCE}\n{output}\n```"
        parts += [head.strip(), block]
        messages += [
            {"role": "assistant", "content": head.strip()},
            {"role": "user", "content": f"{block}\n{FIX_REQUEST}" if failed else block},
        ]
