"""Job-wide hosted-API limits (``orchestrator.teacher.ratelimit``) on a real local Ray, with real
HTTP to the scripted server. What reached the server (and when) is recorded at the server."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import ray

from orchestrator.core.sampling import SamplingParams
from orchestrator.engine.context import StepContext
from orchestrator.engine.teacher_calls import ask_teacher
from orchestrator.teacher.budget import WINDOW_S, Budget
from orchestrator.teacher.client import TeacherClient
from orchestrator.teacher.limiter_client import LimiterClient, estimate_prompt_tokens
from orchestrator.teacher.ratelimit import RateLimiter, parse_reset
from orchestrator.teacher.settings import RateLimits, TeacherSettings
from tests.support.scripted_server import Fault, ScriptedServer


@ray.remote(num_cpus=0)
class Caller:
    """A stand-in worker: ``ask_teacher`` with ``concurrency`` requests in flight."""

    def __init__(self, settings_json: str, limiter: Any, concurrency: int) -> None:
        settings = TeacherSettings.model_validate_json(settings_json)
        self.client = TeacherClient(settings, api_key="test-key")
        self.limiter = LimiterClient(limiter, settings.limits)
        self.client.on_attempt = self.limiter.observe
        self.concurrency = concurrency

    async def run(self, prompts: list[str], max_tokens: int, seconds: float) -> int:
        """Send ``prompts`` (in order) until done or ``seconds`` pass; returns replies seen."""
        ctx = StepContext(
            teacher=self.client,
            request_slots=asyncio.Semaphore(self.concurrency),
            executor=None,  # type: ignore[arg-type]  # no sandbox needed
            limiter=self.limiter,
        )
        sampling = SamplingParams(max_tokens=max_tokens)
        tasks = [
            asyncio.ensure_future(ask_teacher(ctx, [{"role": "user", "content": p}], sampling))
            for p in prompts
        ]
        done, pending = await asyncio.wait(tasks, timeout=seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.client.close()
        return sum(1 for t in done if t.exception() is None)


class Recorder:
    """Reply function recording (reply time, arrival time, tokens) of every chat request."""

    def __init__(self, latency: float, words: int = 10) -> None:
        self.latency = latency
        self.words = words
        self.lock = threading.Lock()
        self.events: list[tuple[float, float, int]] = []  # (arrival, reply, tokens)

    def __call__(self, body: dict[str, Any], index: int) -> str:
        now = time.monotonic()
        prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        with self.lock:
            self.events.append((now - self.latency, now, prompt + self.words))
        return " ".join(["x"] * self.words)

    def arrivals(self) -> list[float]:
        with self.lock:
            return sorted(e[0] for e in self.events)


def settings(base_url: str, **limits: Any) -> str:
    return TeacherSettings(
        base_url=base_url, model="m", max_attempts=4, backoff_initial_s=0.05, backoff_max_s=0.2,
        read_timeout_s=10, limits=RateLimits(**limits),
    ).model_dump_json()  # fmt: skip


def run_callers(
    base_url: str,
    limits: dict[str, Any],
    prompts: list[str],
    *,
    workers: int = 2,
    concurrency: int = 4,
    max_tokens: int = 50,
    seconds: float = 5.0,
) -> tuple[list[int], dict[str, Any]]:
    created = time.monotonic()  # the buckets refill from here (CLOCK_MONOTONIC: system-wide)
    limiter = RateLimiter.remote(RateLimits(**limits).model_dump())
    callers = [Caller.remote(settings(base_url, **limits), limiter, concurrency)]
    callers += [Caller.remote(settings(base_url, **limits), limiter, concurrency)]
    callers = callers[:workers]
    ray.get([c.__ray_ready__.remote() for c in callers])
    done = ray.get([c.run.remote(prompts, max_tokens, seconds) for c in callers])
    # settles are fire-and-forget calls from the callers, not ordered with this driver's calls:
    # read the stats once every grant is settled (bounded wait)
    deadline = time.monotonic() + 10
    stats = ray.get(limiter.stats.remote())
    while stats["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
        stats = ray.get(limiter.stats.remote())
    for actor in [*callers, limiter]:
        ray.kill(actor)
    return done, {**stats, "created": created}


def max_in_window(times: list[float], window: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# ---------------------------------------------------------------------------- pure units
def test_parse_reset_and_estimate() -> None:
    assert parse_reset("1s") == 1.0
    assert parse_reset("6m0s") == 360.0
    assert parse_reset("20ms") == pytest.approx(0.02)
    assert parse_reset("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_reset("2.5") == 2.5
    assert parse_reset("soon") is None and parse_reset(None) is None
    assert estimate_prompt_tokens([{"content": "x" * 400}, {"content": None}]) == 100


def test_budget_never_exceeds_limit_in_a_window() -> None:
    budget = Budget(10, now=0.0)
    now, granted = 0.0, []
    while now < 300:
        if budget.wait_for(1, now) == 0:
            budget.charge(1, now)
            granted.append(now)
        now += 0.05
    assert max_in_window(granted, WINDOW_S) <= 10
    assert len(granted) >= 10 * 300 / 61 - 1  # ... and uses (nearly) all of it


# ---------------------------------------------------------------------------- on Ray
pytestmark = pytest.mark.usefixtures("ray_local")


def test_rpm_enforced_across_two_workers() -> None:
    rec = Recorder(latency=0.02)
    with ScriptedServer(reply=rec, latency=0.02) as srv:
        start = time.monotonic()
        done, stats = run_callers(srv.base_url, {"requests_per_minute": 120}, ["hi"] * 40)
        elapsed = time.monotonic() - start
    arrivals = rec.arrivals()
    # 2/s job-wide (not 2/s per worker), starting from one second's budget
    assert len(arrivals) <= 2 + 2 * elapsed + 1
    assert len(arrivals) >= 0.6 * 2 * 5
    # spread over the minute: one second's budget to start, what refilled while the callers
    # started, then 2/s
    assert max_in_window(arrivals, 1.0) <= 4 + 2 * (arrivals[0] - stats["created"])
    assert max_in_window(arrivals, WINDOW_S) <= 120
    assert all(n >= 2 for n in done)  # both workers got grants
    assert stats["grants"] >= len(arrivals)


def test_tpm_reservation_corrected_by_usage() -> None:
    rec = Recorder(latency=0.02, words=10)
    # "a a a ..." is 200 words in 400 chars: estimated 100 + 10 tokens, charged 210 (extra
    # charge); "word word ..." is 20 words in 100 chars: estimated 25 + 10, charged 30 (refund).
    prompts = ["a " * 200, "word " * 20] * 40
    limits = {"tokens_per_minute": 12_000}  # 200 tokens/s
    with ScriptedServer(reply=rec, latency=0.02) as srv:
        start = time.monotonic()
        done, stats = run_callers(srv.base_url, limits, prompts, max_tokens=10, seconds=5.0)
        elapsed = time.monotonic() - start
    used = sum(e[2] for e in rec.events)
    assert stats["input_tokens"] + stats["output_tokens"] == used  # corrected to usage
    assert stats["refunded_tokens"] > 0 and stats["extra_tokens"] > 0
    assert sum(done) >= 5
    # the budget: one second's worth to start, then 200/s (+ one under-estimated request)
    assert used <= 200 + 200 * elapsed + 210


def test_job_wide_in_flight_cap() -> None:
    latency = 0.3
    rec = Recorder(latency=latency)
    with ScriptedServer(reply=rec, latency=latency) as srv:
        done, stats = run_callers(
            srv.base_url, {"max_in_flight": 3}, ["hi"] * 12, concurrency=8, seconds=8.0
        )
    with rec.lock:
        events = [(a + 0.01, r - 0.01) for a, r, _ in rec.events]  # absorb timer jitter
    peak = max(sum(1 for a, r in events if a <= t < r) for t, _ in events)
    assert peak == 3 and stats["max_in_flight_seen"] == 3
    assert sum(done) == 24 and stats["in_flight"] == 0  # every slot released


def test_429_pauses_every_worker() -> None:
    rec = Recorder(latency=0.02)
    t429: list[float] = []

    def reply(body: dict[str, Any], index: int) -> str | Fault:
        if index == 6:
            t429.append(time.monotonic())
            return Fault(status=429, retry_after=2)
        return rec(body, index)

    limits = {"requests_per_minute": 600}  # 10/s, so sends resume at that pace
    with ScriptedServer(reply=reply, latency=0.02) as srv:
        done, stats = run_callers(srv.base_url, limits, ["hi"] * 40, seconds=6.0)
    assert t429 and stats["pauses"] == 1
    arrivals = rec.arrivals()
    during = [t for t in arrivals if t429[0] + 0.15 < t < t429[0] + 1.95]
    assert during == []  # no worker sent while paused
    after = [t for t in arrivals if t429[0] + 1.95 <= t < t429[0] + 2.45]
    assert 1 <= len(after) <= 7  # no thundering herd: the bucket was emptied
    assert sum(done) >= 20


def test_limits_learned_from_headers() -> None:
    rec = Recorder(latency=0.02)
    headers = {
        "x-ratelimit-limit-requests": "120",
        "x-ratelimit-remaining-requests": "100",
        "x-ratelimit-reset-requests": "30s",
        "x-ratelimit-limit-tokens": "90000",
    }
    with ScriptedServer(reply=rec, latency=0.02, rate_limit_headers=headers) as srv:
        done, stats = run_callers(srv.base_url, {}, ["hi"] * 200, seconds=5.0)
    assert stats["limits"] == {"requests": 120.0, "tokens": 90000.0}
    # the first send of each worker (4 in flight each) went before anything was known; then 2/s
    assert len(rec.arrivals()) <= 8 + 2 + 2 * 5 + 2
    assert sum(done) >= 8


def test_run_job_with_limits(tmp_path: Path, gsm8k_train: Path) -> None:
    from orchestrator.core.seeds import load_seeds
    from tests.support.configs import make_config
    from tests.support.tinygsm_teacher import tinygsm_reply

    cfg = make_config("http://x")
    seeds = load_seeds(str(gsm8k_train), cfg.seeds, limit=8)
    latency = 0.2
    spans: list[tuple[float, float]] = []

    def reply(body: dict[str, Any], index: int) -> str:
        now = time.monotonic()
        spans.append((now - latency + 0.01, now - 0.01))
        return tinygsm_reply(body, index)

    with ScriptedServer(reply=reply, latency=latency) as srv:
        cfg = make_config(srv.base_url)
        assert cfg.teacher is not None
        cfg.teacher.limits = RateLimits(max_in_flight=2, requests_per_minute=600)
        from orchestrator.engine.driver import run_job

        summary = run_job(cfg, seeds, tmp_path / "out")
    assert summary["seeds_failed"] == 0 and summary["seeds_not_run"] == 0
    assert summary["requests"] == len(seeds)
    assert max(sum(1 for a, r in spans if a <= t < r) for t, _ in spans) <= 2


# ---------------------------------------------------------------------------- leases
@ray.remote(num_cpus=0)
class Holder:
    """A stand-in worker that takes grants and keeps them (its requests never end)."""

    def __init__(self, limiter: Any, limits: dict[str, Any]) -> None:
        self.client = LimiterClient(limiter, RateLimits(**limits))
        self.granted = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def _hold_one(self) -> None:
        async with self.client.reserve([{"content": "hi"}], 10):
            self.granted += 1
            await asyncio.sleep(3600)

    async def hold(self, n: int, wait_for: int) -> int:
        """Start ``n`` sends; return once ``wait_for`` of them are granted."""
        self.tasks += [asyncio.ensure_future(self._hold_one()) for _ in range(n)]
        while self.granted < wait_for:
            await asyncio.sleep(0.02)
        return self.granted


def test_dead_workers_slots_come_back() -> None:
    lease = 1.0
    limits = {"max_in_flight": 2}
    limiter = RateLimiter.remote(limits, lease_s=lease)
    alive, dead = Holder.remote(limiter, limits), Holder.remote(limiter, limits)
    try:
        # ``dead`` holds both slots and has a third send queued behind them.
        assert ray.get(dead.hold.remote(3, wait_for=2)) == 2
        # A live worker holding grants keeps them past several leases (it renews them) ...
        later = alive.hold.remote(2, wait_for=2)
        ready, _ = ray.wait([later], timeout=4 * lease)
        assert not ready
        stats = ray.get(limiter.stats.remote())
        assert stats["in_flight"] == 2 and stats["reaped"] == 0
        # ... while a killed worker's slots come back within a lease (+ the reaper's period).
        killed_at = time.monotonic()
        ray.kill(dead, no_restart=True)
        assert ray.get(later, timeout=10 * lease) == 2
        waited = time.monotonic() - killed_at
        stats = ray.get(limiter.stats.remote())
        # Both slots went to the live worker, none to the dead worker's queued send.
        assert stats["reaped"] == 2 and stats["in_flight"] == 2 and stats["grants"] == 4
        assert waited <= 1.25 * lease + 1.0
    finally:
        for actor in (alive, dead, limiter):
            ray.kill(actor)


def test_late_settle_of_a_reaped_grant_is_ignored() -> None:
    limiter = RateLimiter.remote({"max_in_flight": 1}, lease_s=0.5)
    try:
        # An owner that never renews: its grant is reaped after the lease.
        assert ray.get(limiter.acquire.remote("g1", 1, 10, "ghost"))
        deadline = time.monotonic() + 5
        while ray.get(limiter.stats.remote())["reaped"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ray.get(limiter.settle.remote("g1", 1, 10))  # it answered after all: ignored
        assert ray.get(limiter.acquire.remote("g2", 1, 10, "other"), timeout=5)
        ray.get(limiter.settle.remote("g2", 1, 10))
        stats = ray.get(limiter.stats.remote())
        assert stats["in_flight"] == 0 and stats["grants"] == 2  # never negative, not freed twice
    finally:
        ray.kill(limiter)
