"""Hosted-API rate limits shared by every actor of a job: one ``RateLimiter`` Ray actor.

What it does:

* holds one budget per configured (or learned) limit: requests, total tokens, input tokens and
  output tokens per minute, plus a job-wide cap on requests in flight;
* grants sends in FIFO order (``acquire``): a send reserves 1 request and an estimate of its
  tokens (made worker-side, see ``orchestrator.teacher.limiter_client``), and waits until every
  budget can pay for it; ``settle`` corrects the reservation with the reply's ``usage`` (refund
  or extra charge) and frees the in-flight slot, also when the request failed or was cancelled;
* learns unset limits from OpenAI's ``x-ratelimit-limit-{requests,tokens}`` headers and follows
  ``x-ratelimit-remaining-*`` / ``x-ratelimit-reset-*`` (no grants for a resource the server says
  is spent until its reset);
* after a 429, pauses *all* grants job-wide until the server's Retry-After (or an exponential
  pause: 1 s doubling to 60 s while 429s keep coming) and empties the buckets, so sends resume at
  the refill rate instead of as a thundering herd.

Budgets: one ``orchestrator.teacher.budget.Budget`` per limit (a token bucket that spreads
sends over the minute plus a sliding charge log that caps any 61 s window).

Why one actor, not per-actor shares. A job-wide actor keeps the budget exact whatever the number
of workers and however unevenly they send (static shares waste the budget of idle workers and
cannot pause everyone after a 429). It costs one awaited ``acquire`` call per request plus
``settle`` fire-and-forget (batched per worker: ``settle_many``); Ray does ~1.7k such calls/s on 2 cores, and
``benchmarks/rate_limit.py`` measured 510-580 sequential grant + settle round trips/s from a
single actor (~31-35k RPM; several workers overlap their calls), beyond the hosted limits this
is for, while a 600 RPM job costs the limiter ~20 calls/s. Batched grants (a worker taking
several sends at once) would cut the calls further but let a worker keep sending during a 429
pause or past a learned limit, so they are not used. The calls do cost CPU at high request
rates: with a job-wide ``max_in_flight`` every request pays ~2.5 ms of CPU for them (worker
side plus limiter, ``benchmarks/saturation.py client --path ask``), more than the teacher
client itself (without any configured limit a worker does not ask per request: see
``orchestrator.teacher.limiter_client``).

Leases. Every grant belongs to an *owner* (one ``LimiterClient``, i.e. one worker incarnation:
a restarted actor builds a new one) and the owner's lease must be renewed: ``acquire`` and
``renew`` renew it (when a worker renews: ``orchestrator.teacher.limiter_client``). A reaper in
the limiter frees the in-flight slots of owners whose lease ran out (``lease_s``, default
``LEASE_S``): a worker that died mid-request gives its slots back within ``lease_s`` plus a
quarter of it, so a job with ``max_in_flight`` cannot deadlock on a dead worker's slots. A grant
about to be made to an expired owner (a dead worker's call still queued here) is refused. Token
charges of reaped grants stay in the window (the server may have counted those requests); a
late ``settle`` of a reaped grant is ignored. A live worker whose event loop is blocked for
longer than ``lease_s`` loses its leases too (its slots may be granted again while its requests
still run): keep ``lease_s`` well above any blocking section of a worker.

What it does NOT do: run in the workers (their handle ``LimiterClient``, the reservation
estimate and when a worker asks at all live in ``orchestrator.teacher.limiter_client``), retry
(tenacity in ``TeacherClient`` stays the single retry owner; a retry of a request is not gated
here), count tokens with a tokenizer, or coordinate several jobs sharing one API key.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import ray

from orchestrator.teacher.budget import Budget
from orchestrator.teacher.settings import RateLimits

__all__ = ["LEASE_S", "RateLimiter", "parse_reset"]

LEASE_S = 30.0  # an owner that neither acquires nor renews for this long is presumed dead
PAUSE_INITIAL_S = 1.0  # first pause after a 429 without Retry-After
PAUSE_MAX_S = 60.0
RESOURCES = ("requests", "tokens", "input_tokens", "output_tokens")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_reset(value: str | None) -> float | None:
    """Seconds in an ``x-ratelimit-reset-*`` header: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"2.5"``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass
class _Reservation:
    amounts: dict[str, float]
    owner: str
    entries: dict[str, list[float]] = field(default_factory=dict)


@ray.remote(num_cpus=0, max_concurrency=10_000)
class RateLimiter:
    """The job's limiter actor (see module docstring). Async methods; waiters queue FIFO."""

    def __init__(self, limits: dict[str, Any], lease_s: float = LEASE_S) -> None:
        self.settings = RateLimits.model_validate(limits)
        self.lease_s = lease_s
        self.leases: dict[str, float] = {}  # owner -> monotonic time its lease runs out
        self.reaped: set[str] = set()  # grant ids freed by the reaper (a late settle is ignored)
        self.reaper: asyncio.Task[None] | None = None
        now = time.monotonic()
        s = self.settings
        configured = {
            "requests": s.requests_per_minute,
            "tokens": s.tokens_per_minute,
            "input_tokens": s.input_tokens_per_minute,
            "output_tokens": s.output_tokens_per_minute,
        }
        self.budgets: dict[str, Budget] = {
            k: Budget(v, now) for k, v in configured.items() if v is not None
        }
        self.fixed = {k for k, v in configured.items() if v is not None}
        self.max_in_flight = s.max_in_flight
        self.in_flight = 0
        self.granted: dict[str, _Reservation] = {}
        self.abandoned: set[str] = set()
        self.turn = asyncio.Lock()  # FIFO: the head waiter holds it until granted
        self.released = asyncio.Event()
        self.paused_until = 0.0
        self.pause_s = PAUSE_INITIAL_S
        self.stats_: dict[str, float] = {
            "grants": 0, "pauses": 0, "max_in_flight_seen": 0, "refunded_tokens": 0,
            "extra_tokens": 0, "input_tokens": 0, "output_tokens": 0,
            "reserved_output_tokens": 0, "reaped": 0, "expired_waiters": 0,
        }  # fmt: skip

    # ----------------------------------------------------------------- worker calls
    async def active(self) -> bool:
        """True when grants can wait for anything (a limit, a cap, or a pause)."""
        return bool(self.budgets) or self.max_in_flight is not None or self.paused_until > 0

    async def renew(self, owner: str) -> float:
        """Extend ``owner``'s lease; returns the lease length in seconds."""
        self.leases[owner] = time.monotonic() + self.lease_s
        self._start_reaper()
        return self.lease_s

    async def acquire(
        self, grant_id: str, input_tokens: int, output_tokens: int, owner: str
    ) -> bool:
        """Wait for the budgets to pay for one request; False if it was abandoned meanwhile or
        its owner's lease ran out while it waited (the owner is presumed dead)."""
        self.leases[owner] = time.monotonic() + self.lease_s
        self._start_reaper()
        amounts = {
            "requests": 1.0,
            "tokens": float(input_tokens + output_tokens),
            "input_tokens": float(input_tokens),
            "output_tokens": float(output_tokens),
        }
        async with self.turn:
            while True:
                if grant_id in self.abandoned:
                    self.abandoned.discard(grant_id)
                    return False
                now = time.monotonic()
                if self.leases.get(owner, 0.0) < now:
                    self.stats_["expired_waiters"] += 1
                    return False
                wait = self.paused_until - now
                for name, budget in self.budgets.items():
                    wait = max(wait, budget.wait_for(amounts[name], now))
                capped = self.max_in_flight is not None and self.in_flight >= self.max_in_flight
                if wait <= 0 and not capped:
                    break
                self.released.clear()
                timeout = wait if wait > 0 else None
                with contextlib.suppress(asyncio.TimeoutError):
                    # a release (in-flight cap) or a learned limit may change the answer early
                    await asyncio.wait_for(self.released.wait(), timeout)
            reservation = _Reservation(amounts, owner)
            for name, budget in self.budgets.items():
                reservation.entries[name] = budget.charge(amounts[name], now)
            self.granted[grant_id] = reservation
            self.in_flight += 1
            self.stats_["grants"] += 1
            self.stats_["reserved_output_tokens"] += output_tokens
            self.stats_["max_in_flight_seen"] = max(
                self.stats_["max_in_flight_seen"], self.in_flight
            )
            return True

    async def settle(
        self, grant_id: str, input_tokens: int | None, output_tokens: int | None
    ) -> None:
        """End a request: correct its reservation with ``usage`` (None = no reply: keep the
        reservation, the server may have counted it) and free its in-flight slot."""
        reservation = self.granted.pop(grant_id, None)
        if reservation is None and grant_id in self.reaped:  # its slot was already reclaimed
            self.reaped.discard(grant_id)
            return
        if reservation is None:  # cancelled before it was granted
            self.abandoned.add(grant_id)
            self.released.set()
            return
        self.in_flight -= 1
        if input_tokens is not None and output_tokens is not None:
            now = time.monotonic()
            actual = {
                "requests": 1.0,
                "tokens": float(input_tokens + output_tokens),
                "input_tokens": float(input_tokens),
                "output_tokens": float(output_tokens),
            }
            delta = actual["tokens"] - reservation.amounts["tokens"]
            self.stats_["refunded_tokens" if delta < 0 else "extra_tokens"] += abs(delta)
            self.stats_["input_tokens"] += input_tokens
            self.stats_["output_tokens"] += output_tokens
            for name, entry in reservation.entries.items():
                if name in self.budgets:
                    self.budgets[name].correct(entry, actual[name], now)
        self.released.set()

    async def settle_many(self, items: list[tuple[str, int | None, int | None]]) -> None:
        """``settle`` for each (grant id, input tokens, output tokens): one call for a batch."""
        for grant_id, input_tokens, output_tokens in items:
            await self.settle(grant_id, input_tokens, output_tokens)

    async def observe(
        self, status: int | None, headers: dict[str, str], retry_after: float | None
    ) -> None:
        """An HTTP attempt's outcome: learn ``x-ratelimit-*`` headers; pause after a 429."""
        now = time.monotonic()
        if self.settings.learn_from_headers is not False:  # (None: the driver decides)
            self._learn(headers, now)
        if status == 429:
            pause = retry_after if retry_after is not None else self.pause_s
            self.pause_s = (
                min(PAUSE_MAX_S, self.pause_s * 2) if retry_after is None else self.pause_s
            )
            self.paused_until = max(self.paused_until, now + pause)
            self.stats_["pauses"] += 1
            for budget in self.budgets.values():  # resume at the refill rate, not in a burst
                budget._refill(now)
                budget.level = min(budget.level, 0.0)
                budget.stamp = max(budget.stamp, self.paused_until)
        elif status is not None and status < 400:
            self.pause_s = PAUSE_INITIAL_S
        self.released.set()

    def _start_reaper(self) -> None:
        if self.reaper is None or self.reaper.done():
            self.reaper = asyncio.ensure_future(self._reap_forever())

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 4)
            self.reap(time.monotonic())

    def reap(self, now: float) -> int:
        """Free the in-flight slots of grants whose owner's lease ran out; returns how many."""
        dead = {owner for owner, until in self.leases.items() if until < now}
        if not dead:
            return 0
        lost = [gid for gid, r in self.granted.items() if r.owner in dead]
        for grant_id in lost:
            del self.granted[grant_id]
            self.reaped.add(grant_id)
        for owner in dead:
            del self.leases[owner]
        if lost:
            self.in_flight -= len(lost)
            self.stats_["reaped"] += len(lost)
            self.released.set()
        return len(lost)

    def _learn(self, headers: Mapping[str, str], now: float) -> None:
        lower = {k.lower(): v for k, v in headers.items()}
        for name, suffix in (("requests", "requests"), ("tokens", "tokens")):
            limit = _number(lower.get(f"x-ratelimit-limit-{suffix}"))
            if limit is not None and limit > 0 and name not in self.fixed:
                budget = self.budgets.get(name)
                if budget is None:
                    self.budgets[name] = budget = Budget(limit, now)
                budget.limit = limit
            budget = self.budgets.get(name)
            remaining = _number(lower.get(f"x-ratelimit-remaining-{suffix}"))
            if budget is None or remaining is None:
                continue
            budget._refill(now)
            budget.level = min(budget.level, remaining)
            reset = parse_reset(lower.get(f"x-ratelimit-reset-{suffix}"))
            if remaining < 1 and reset is not None:
                budget.blocked_until = max(budget.blocked_until, now + reset)

    async def stats(self) -> dict[str, Any]:
        return {
            **self.stats_,
            "in_flight": self.in_flight,
            "owners": len(self.leases),
            "limits": {k: b.limit for k, b in self.budgets.items()},
            "paused_for_s": max(0.0, self.paused_until - time.monotonic()),
        }
