"""Does the job-wide rate limiter keep a hosted API's limits, and use them?

Several Ray actors send through ``ask_teacher`` (the path every teacher request takes) with one
shared ``RateLimiter`` (default RPM 600, TPM 100k) to the scripted server on 127.0.0.1, for
``--seconds`` (default 200). Requests carry 40-130 prompt words and get 50-120 reply words (the
server's usage counts words), i.e. ~90-250 tokens each. The server records every request's
arrival time and tokens. Printed, as ratios to the limit: the most requests and tokens seen in
any 60 s window (must be <= 1.00), and the average per minute over the run (target >= 0.90).
Then the limiter's own cost: sequential grant + settle round trips per second from one actor.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402

from orchestrator.core.sampling import SamplingParams  # noqa: E402
from orchestrator.engine.context import StepContext  # noqa: E402
from orchestrator.engine.teacher_calls import ask_teacher  # noqa: E402
from orchestrator.teacher.client import TeacherClient  # noqa: E402
from orchestrator.teacher.limiter_client import LimiterClient  # noqa: E402
from orchestrator.teacher.ratelimit import RateLimiter  # noqa: E402
from orchestrator.teacher.settings import RateLimits, TeacherSettings  # noqa: E402
from tests.support.scripted_server import ScriptedServer  # noqa: E402

MAX_TOKENS = 130


@ray.remote(num_cpus=0)
class Sender:
    def __init__(self, settings_json: str, limiter: Any, concurrency: int) -> None:
        settings = TeacherSettings.model_validate_json(settings_json)
        self.client = TeacherClient(settings, api_key="bench")
        self.limiter = LimiterClient(limiter, settings.limits)
        self.client.on_attempt = self.limiter.observe
        self.concurrency = concurrency

    async def run(self, seconds: float, seed: int) -> int:
        ctx = StepContext(
            teacher=self.client,
            request_slots=asyncio.Semaphore(self.concurrency),
            executor=None,  # type: ignore[arg-type]  # no sandbox here
            limiter=self.limiter,
        )
        rng = random.Random(seed)
        sampling = SamplingParams(max_tokens=MAX_TOKENS)
        deadline = time.monotonic() + seconds
        done = 0

        async def loop() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                words = " ".join(f"w{rng.randrange(100)}" for _ in range(rng.randint(40, 130)))
                await ask_teacher(ctx, [{"role": "user", "content": words}], sampling)
                done += 1

        tasks = [asyncio.ensure_future(loop()) for _ in range(self.concurrency)]
        await asyncio.wait(tasks, timeout=seconds + 5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.close()
        return done

    async def round_trips(self, n: int) -> float:
        """Sequential reserve/settle pairs per second (the limiter never makes them wait)."""
        start = time.monotonic()
        for _ in range(n):
            async with self.limiter.reserve([{"content": "x"}], 1) as grant:
                grant.usage(1, 1)
        return n / (time.monotonic() - start)


class Recorder:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.lock = threading.Lock()
        self.events: list[tuple[float, int]] = []  # (arrival, tokens)
        self.rng = random.Random(7)

    def __call__(self, body: dict[str, Any], index: int) -> str:
        now = time.monotonic()
        prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        with self.lock:
            reply = self.rng.randint(50, 120)
            self.events.append((now - self.latency, prompt + reply))
        return " ".join(["y"] * reply)


def max_in_window(events: list[tuple[float, int]], window: float) -> tuple[int, int]:
    """Most requests and most tokens in any ``window`` seconds (arrival times)."""
    best_n = best_tok = lo = tok = 0
    for hi, (t, n) in enumerate(events):
        tok += n
        while events[lo][0] <= t - window:
            tok -= events[lo][1]
            lo += 1
        best_n, best_tok = max(best_n, hi - lo + 1), max(best_tok, tok)
    return best_n, best_tok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=200.0)
    parser.add_argument("--rpm", type=float, default=600)
    parser.add_argument("--tpm", type=float, default=100_000)
    parser.add_argument("--actors", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.5)
    args = parser.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="ERROR", log_to_driver=False)  # fmt: skip
    limits = RateLimits(requests_per_minute=args.rpm, tokens_per_minute=args.tpm)
    rec = Recorder(args.latency)
    with ScriptedServer(reply=rec, latency=args.latency, record_requests=False) as srv:
        settings = TeacherSettings(base_url=srv.base_url, model="bench", limits=limits)
        limiter = RateLimiter.remote(limits.model_dump())
        senders = [
            Sender.remote(settings.model_dump_json(), limiter, args.concurrency)
            for _ in range(args.actors)
        ]
        ray.get([s.__ray_ready__.remote() for s in senders])
        done = sum(ray.get([s.run.remote(args.seconds, i) for i, s in enumerate(senders)]))
        stats = ray.get(limiter.stats.remote())
    events = sorted(rec.events)
    span = events[-1][0] - events[0][0]
    n_max, tok_max = max_in_window(events, 60.0)
    total_tok = sum(n for _, n in events)
    per_min_n, per_min_tok = len(events) * 60 / span, total_tok * 60 / span
    print(
        f"rate_limit: rpm={args.rpm:g} tpm={args.tpm:g} actors={args.actors}x{args.concurrency} "
        f"latency={args.latency}s run={span:.0f}s requests={len(events)} replies={done} "
        f"tokens={total_tok}",
        flush=True,
    )
    print(
        f"max in any 60 s window / limit: requests={n_max / args.rpm:.3f} ({n_max}) "
        f"tokens={tok_max / args.tpm:.4f} ({tok_max}) (must be <= 1)",
        flush=True,
    )
    print(
        f"average per minute / limit: requests={per_min_n / args.rpm:.3f} "
        f"tokens={per_min_tok / args.tpm:.3f} (target >= 0.90 for the binding limit)",
        flush=True,
    )
    print(
        f"limiter: refunded_tokens={stats['refunded_tokens']:.0f} "
        f"extra_tokens={stats['extra_tokens']:.0f} pauses={stats['pauses']:.0f}",
        flush=True,
    )
    probe = RateLimiter.remote(RateLimits(max_in_flight=1_000_000).model_dump())
    sender = Sender.remote(settings.model_dump_json(), probe, 1)
    rate = ray.get(sender.round_trips.remote(2000))
    print(
        f"limiter round trip (acquire awaited + settle): {rate:.0f} requests/s from one actor "
        f"= {rate * 60:.0f} RPM",
        flush=True,
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
