"""The worker side of the job's hosted-API rate limits: ``LimiterClient`` and its ``Grant``.

Each worker incarnation holds one ``LimiterClient``, a handle on the job's ``RateLimiter`` actor
(``orchestrator.teacher.ratelimit``), used from the worker's event loop. ``reserve`` wraps one
request: it waits for a grant (``acquire``), yields a ``Grant`` on which the caller records the
reply's ``usage``, and settles the grant when the block ends (fire-and-forget, also on errors and
cancellation). Settles that end within ``SETTLE_DELAY_S`` (10 ms) of each other go out as one
``settle_many`` call: at hundreds of requests per second that halves the actor calls per request
(the awaited ``acquire`` stays one call per request, so grants stay exact and FIFO), and a slot
or a refund comes back at most 10 ms later. ``observe`` is the ``TeacherClient.on_attempt`` observer that forwards rate-limit
headers and 429s to the limiter.

When a worker asks. Without any configured limit, a worker does not ask the limiter per request:
it only reports rate-limit headers and 429s, and starts asking once it saw one or the limiter
knows a limit (it checks at most once a second, so a 429 seen by another worker reaches it
within a second).

Reservation estimate. Input tokens are ``chars / 4`` of the messages; output tokens are the
request's ``max_tokens``. ``max_tokens`` is an upper bound, so the reservation never
under-counts the reply (a running average would under-reserve half the time, and an extra charge
after the fact cannot undo a window already overrun), and it is how OpenAI itself counts a
request against TPM when the request arrives. The unused part comes back with ``settle`` within
milliseconds of the reply, so over-reserving only delays sends while requests are in flight.

Lease renewal. A ``LimiterClient`` is one lease *owner* (a restarted actor builds a new one, so
a new owner). ``acquire`` renews its lease, and while it has sends waiting or in flight a
background task calls ``renew`` every ``lease_s / 3`` (one small call per worker, not per
request); with nothing held it renews nothing and the limiter lets the lease lapse. A grant
refused because the lease ran out while the send waited (the loop was blocked past ``lease_s``)
is asked for again.

What it does NOT do: hold budgets, decide grants, learn limits or reap dead owners (all in the
``RateLimiter`` actor, ``orchestrator.teacher.ratelimit``), retry a request (``TeacherClient``
owns retries), or count tokens with a tokenizer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import ray.exceptions

from orchestrator.teacher.ratelimit import LEASE_S
from orchestrator.teacher.settings import RateLimits

__all__ = ["Grant", "LimiterClient", "estimate_prompt_tokens"]


def estimate_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of ``messages`` estimated as characters / 4 (at least 1)."""
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return max(1, chars // 4)


@dataclass
class Grant:
    """A granted send; ``usage`` records the reply's tokens for ``settle``."""

    input_tokens: int | None = None
    output_tokens: int | None = None

    def usage(self, input_tokens: int, output_tokens: int) -> None:
        self.input_tokens, self.output_tokens = input_tokens, output_tokens


class LimiterClient:
    """Worker-side handle on the job's ``RateLimiter`` (one per worker, used from its loop)."""

    CHECK_EVERY_S = 1.0
    SETTLE_DELAY_S = 0.01  # settles ending within this long share one actor call
    SETTLE_BATCH = 128

    def __init__(self, actor: Any, limits: RateLimits) -> None:
        self.actor = actor
        self.active = limits.configured()
        self.learn = limits.learn_from_headers is not False  # (None: the driver decides)
        self._next_check = 0.0
        self.owner = uuid.uuid4().hex  # this incarnation's lease (see the module docstring)
        self._holding = 0  # sends waiting for a grant or in flight
        self._renewer: asyncio.Task[None] | None = None
        self._settles: list[tuple[str, int | None, int | None]] = []  # not yet sent
        self._flush_at: asyncio.TimerHandle | None = None

    async def _renew_while_holding(self) -> None:
        every = LEASE_S / 3
        while self._holding > 0:
            try:
                every = float(await self.actor.renew.remote(self.owner)) / 3
            except ray.exceptions.RayError:  # the limiter is gone (the job is ending)
                break
            await asyncio.sleep(every)
        self._renewer = None

    def _hold(self) -> None:
        self._holding += 1
        if self._renewer is None:
            self._renewer = asyncio.ensure_future(self._renew_while_holding())

    def observe(
        self, status: int | None, headers: Mapping[str, str], retry_after: float | None
    ) -> None:
        """``TeacherClient.on_attempt`` observer: forwards rate-limit headers and 429s."""
        relevant = {k: v for k, v in headers.items() if k.lower().startswith("x-ratelimit-")}
        if status == 429 or (relevant and self.learn):
            self.active = True
            self.actor.observe.remote(status, relevant, retry_after)

    async def _is_active(self) -> bool:
        if not self.active and time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self.CHECK_EVERY_S
            self.active = bool(await self.actor.active.remote())
        return self.active

    @contextlib.asynccontextmanager
    async def reserve(
        self, messages: list[dict[str, Any]], max_tokens: int
    ) -> AsyncIterator[Grant]:
        """Wait for a grant for one request; settle it (usage or not) when the block ends."""
        grant = Grant()
        if not await self._is_active():
            yield grant
            return
        self._hold()
        grant_id, answered = "", False
        try:
            while True:
                grant_id, answered = uuid.uuid4().hex, False
                ok = await self.actor.acquire.remote(
                    grant_id, estimate_prompt_tokens(messages), max_tokens, self.owner
                )
                answered = True
                if ok:
                    break
                # Refused: this owner's lease ran out while the send waited (the loop was
                # blocked past lease_s); ``acquire`` renewed it, so ask again.
            answered = False
            yield grant
        finally:  # also on errors and cancellation (fire-and-forget)
            self._holding -= 1
            if not answered:
                self._settle(grant_id, grant.input_tokens, grant.output_tokens)

    def _settle(self, grant_id: str, input_tokens: int | None, output_tokens: int | None) -> None:
        """Queue a settle; the queue goes out as one ``settle_many`` call ``SETTLE_DELAY_S``
        after its first entry, or at once when ``SETTLE_BATCH`` are waiting or nothing else is
        held (the caller may be done: its event loop may not run that long)."""
        self._settles.append((grant_id, input_tokens, output_tokens))
        if len(self._settles) >= self.SETTLE_BATCH or self._holding == 0:
            self.flush()
        elif self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(self.SETTLE_DELAY_S, self.flush)

    def flush(self) -> None:
        """Send the queued settles now (fire-and-forget)."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        batch, self._settles = self._settles, []
        if batch:
            self.actor.settle_many.remote(batch)
