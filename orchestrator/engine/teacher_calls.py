"""Every teacher request of a pipeline goes through ``ask_teacher``: the reply log first, then
the worker's in-flight slots, the job's rate limiter, the client (tenacity retries inside), the
``on_length`` policy for replies cut by ``max_tokens``, and the counters.

Counters (group ``teacher``): ``requests`` (HTTP attempts, failed ones included),
``completions`` (replies received), ``cache_hits`` (replies taken from the reply log instead),
``prompt_tokens`` / ``completion_tokens`` (of paid replies only), ``finish:length``,
``length_retries``, ``length_rejected``.

It does not parse replies (the stages do) or choose what to ask.
"""

from __future__ import annotations

import math
import time

from orchestrator.core.records import content_hash
from orchestrator.core.sampling import SamplingParams
from orchestrator.engine.context import StepContext
from orchestrator.output.replies import reply_key
from orchestrator.teacher.client import TeacherError
from orchestrator.teacher.replies import Completion


class LengthRejected(Exception):
    """A reply cut by ``max_tokens`` that the teacher's ``on_length`` policy does not keep:
    ``reject``, or ``retry`` once the budget reached ``length_max_tokens``. Callers drop what
    the request was for with reason ``length``."""

    def __init__(self, completion: Completion, max_tokens: int) -> None:
        super().__init__(f"reply cut at max_tokens={max_tokens}")
        self.completion = completion
        self.max_tokens = max_tokens

    @property
    def detail(self) -> str:
        return f"cut at max_tokens={self.max_tokens}: ...{self.completion.text[-200:]}"


def next_budget(max_tokens: int, factor: float, cap: int) -> int | None:
    """The re-ask budget after a reply cut at ``max_tokens``: ``max_tokens * factor`` (at least
    one more token) capped at ``cap``; None when the cap is already reached."""
    bigger = min(cap, max(max_tokens + 1, math.ceil(max_tokens * factor)))
    return bigger if bigger > max_tokens else None


async def ask_teacher(
    ctx: StepContext,
    messages: list[dict[str, str]],
    sampling: SamplingParams,
    *,
    stop: list[str] | None = None,
    seed: int | None = None,
) -> Completion:
    """One teacher request under the worker's in-flight slots, counted in ``teacher``. Every
    step that talks to the teacher goes through here. With a job limiter, each send waits for
    its grant (1 request + estimated tokens, reserving that send's ``max_tokens``) and the
    reservation is corrected with ``usage``.

    A reply cut by ``max_tokens`` (``finish_reason == "length"``; one cut at a stop sequence
    is ``"stop"`` and is not affected) follows the teacher's ``on_length``: ``keep`` returns it;
    ``retry`` asks again with ``length_retry_factor`` times the budget (counted in
    ``teacher/length_retries``) up to ``length_max_tokens``, and raises ``LengthRejected`` when a
    reply at that budget is still cut; ``reject`` raises ``LengthRejected`` at once.

    A request answered before (in the reply log, handed over with the seed) is not sent again:
    its logged reply is used (``teacher/cache_hits``); every reply that is sent for is logged
    before it is returned, so its caller parses it only once it is durable."""
    if ctx.teacher is None:
        raise RuntimeError("this pipeline needs a teacher but none is configured")
    settings = ctx.teacher.settings
    max_tokens = sampling.max_tokens
    while True:
        completion = await _answer(ctx, messages, sampling, max_tokens, stop, seed)
        if completion.finish_reason != "length" or settings.on_length == "keep":
            return completion
        if settings.on_length == "retry":
            bigger = next_budget(
                max_tokens, settings.length_retry_factor, settings.length_max_tokens
            )
            if bigger is not None:
                ctx.counters.add("teacher", "length_retries")
                max_tokens = bigger
                continue
        ctx.counters.add("teacher", "length_rejected")
        raise LengthRejected(completion, max_tokens)


async def _answer(
    ctx: StepContext,
    messages: list[dict[str, str]],
    sampling: SamplingParams,
    max_tokens: int,
    stop: list[str] | None,
    seed: int | None,
) -> Completion:
    """The logged reply to this request, or a new one (then logged); ``reply_id`` set."""
    assert ctx.teacher is not None
    request = {
        "model": ctx.teacher.settings.model, "messages": messages, "max_tokens": max_tokens,
        "temperature": sampling.temperature, "top_p": sampling.top_p, "stop": stop or None,
        "seed": seed,
    }  # fmt: skip
    exact = content_hash(request)
    sample = ctx.samples[exact]
    ctx.samples[exact] += 1
    key = reply_key(request, ctx.seed_id, sample)
    logged = ctx.logged.get(key)
    if logged is not None:
        ctx.counters.add("teacher", "cache_hits")
        return Completion(
            text=logged["text"], finish_reason=logged["finish_reason"],
            prompt_tokens=logged["prompt_tokens"], completion_tokens=logged["completion_tokens"],
            model=logged["model"], attempts=0, reply_id=key,
        )  # fmt: skip
    completion = await _send(ctx, messages, sampling, max_tokens, stop, seed)
    completion.reply_id = key
    if ctx.replies is not None:
        ctx.replies.append({
            "key": key, "seed_id": ctx.seed_id, "text": completion.text,
            "finish_reason": completion.finish_reason, "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens, "model": completion.model,
            "attempts": completion.attempts, "max_tokens": max_tokens, "time": time.time(),
        })  # fmt: skip
    return completion


async def _send(
    ctx: StepContext,
    messages: list[dict[str, str]],
    sampling: SamplingParams,
    max_tokens: int,
    stop: list[str] | None,
    seed: int | None,
) -> Completion:
    """One request (tenacity retries inside) under the slots and the limiter, counted."""
    assert ctx.teacher is not None
    async with ctx.request_slots:
        if ctx.limiter is None:
            completion = await _chat(ctx, messages, sampling, max_tokens, stop, seed)
        else:
            async with ctx.limiter.reserve(messages, max_tokens) as grant:
                completion = await _chat(ctx, messages, sampling, max_tokens, stop, seed)
                grant.usage(completion.prompt_tokens, completion.completion_tokens)
    ctx.counters.add("teacher", "completions")
    ctx.counters.add("teacher", "prompt_tokens", completion.prompt_tokens)
    ctx.counters.add("teacher", "completion_tokens", completion.completion_tokens)
    if completion.finish_reason == "length":
        ctx.counters.add("teacher", "finish:length")
    return completion


async def _chat(
    ctx: StepContext,
    messages: list[dict[str, str]],
    sampling: SamplingParams,
    max_tokens: int,
    stop: list[str] | None,
    seed: int | None,
) -> Completion:
    """One call to the teacher client; ``teacher/requests`` counts its HTTP attempts."""
    assert ctx.teacher is not None
    ctx.in_flight.value += 1
    try:
        completion = await ctx.teacher.chat(
            messages, max_tokens=max_tokens, temperature=sampling.temperature,
            top_p=sampling.top_p, stop=stop, seed=seed,
        )  # fmt: skip
    except TeacherError as err:
        ctx.counters.add("teacher", "requests", err.attempts or 1)
        raise
    finally:
        ctx.in_flight.value -= 1
    ctx.counters.add("teacher", "requests", completion.attempts)
    return completion
