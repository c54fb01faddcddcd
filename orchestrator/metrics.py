"""The metrics hub: one named Ray actor per job that sums counter deltas pushed by workers.

Workers push in batches (at most every ``PUSH_INTERVAL_S`` and at the end of each chunk), so
the hub never sees one call per record. Gauges (requests in flight) are kept per worker and
summed on read. The hub also keeps a few recently accepted rows for the display. It renders
nothing (see ``orchestrator.progress``) and is not the durable record (the output's ledger is).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import ray

from orchestrator.counters import Counters

PUSH_INTERVAL_S = 0.5


@ray.remote(num_cpus=0)
class MetricsHub:
    def __init__(self) -> None:
        self.counters = Counters()
        self.gauges: dict[str, dict[str, float]] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=5)
        self.errors: deque[str] = deque(maxlen=5)
        self.started = time.time()

    def push(
        self,
        worker: str,
        delta: dict[str, dict[str, float]],
        gauges: dict[str, float] | None = None,
        recent: list[dict[str, Any]] | None = None,
        errors: list[str] | None = None,
    ) -> None:
        self.counters.merge(delta)
        if gauges is not None:
            self.gauges[worker] = gauges
        self.recent.extend(recent or [])
        self.errors.extend(errors or [])

    def snapshot(self) -> dict[str, Any]:
        summed: dict[str, float] = {}
        for values in self.gauges.values():
            for name, value in values.items():
                summed[name] = summed.get(name, 0) + value
        return {
            "counters": self.counters.as_dict(),
            "gauges": summed,
            "workers": dict(self.gauges),
            "recent": list(self.recent),
            "errors": list(self.errors),
            "elapsed_s": time.time() - self.started,
        }
