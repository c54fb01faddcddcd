"""What every step of one worker shares: the teacher, in-flight slots, the sandbox executor,
counters, the rate limiter and the reply log; and what one seed's run adds (``for_seed``): its
dropped rows and side-split rows, its logged replies and its request counts.

It holds state; it sends nothing and runs nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.core.records import Record
from orchestrator.sandbox.batch import BatchingExecutor
from orchestrator.teacher.client import TeacherClient
from orchestrator.telemetry.counters import Counters

if TYPE_CHECKING:
    from orchestrator.output.replies import ReplyWriter
    from orchestrator.teacher.limiter_client import LimiterClient


@dataclass
class Gauge:
    value: int = 0


@dataclass
class StepContext:
    teacher: TeacherClient | None
    request_slots: asyncio.Semaphore
    executor: BatchingExecutor
    counters: Counters = field(default_factory=Counters)
    rejected: list[Record] = field(default_factory=list)
    side: dict[str, list[Record]] = field(default_factory=dict)  # side split -> records
    in_flight: Gauge = field(default_factory=Gauge)
    limiter: LimiterClient | None = None  # the job's hosted-API rate limits (None: none)
    replies: ReplyWriter | None = None  # the reply log (orchestrator.output.replies)
    # Per seed (``for_seed``): its id, its logged replies by key, and how often each exact
    # request was asked for it so far (the sample index of its cache key).
    seed_id: str = ""
    logged: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: Counter[str] = field(default_factory=Counter)

    def for_seed(
        self, seed_id: str = "", logged: dict[str, dict[str, Any]] | None = None
    ) -> StepContext:
        """A context sharing everything but the per-seed state: outputs (rejected, side
        splits), the seed's logged replies and its request counts."""
        return dataclasses.replace(
            self, rejected=[], side={}, seed_id=seed_id, logged=logged or {}, samples=Counter()
        )
