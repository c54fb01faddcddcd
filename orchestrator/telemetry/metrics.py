"""The metrics hub: one named Ray actor per job that sums counter deltas pushed by workers.

Workers push in batches (at most every ``PUSH_INTERVAL_S`` and at the end of each chunk), so
the hub never sees one call per record. Gauges (requests in flight, requests waiting for a
slot, rows pending commit, the sandbox's programs queued / running, slots and slot-seconds,
per-teacher-replica load ``{"replicas": {url: in_flight}}``) are kept per worker and summed on
read, with each worker's last-push time. The hub also keeps a few recently accepted
rows and the latest errors (``{"kind", "message"}``) for the display.

The hub is named ``hub_name(out_dir)`` in namespace ``mathsynth`` so anything on the cluster can
find a job's counters (``ray.get_actor``). It also exports every counter and gauge through
``ray.util.metrics`` (Ray's dashboard / Prometheus / Grafana): ``mathsynth_events_total`` with
tags ``job, stage, event, reason`` (``dropped:too_short`` of stage ``execute`` is event
``dropped``, reason ``too_short``) and ``mathsynth_gauge`` with tags ``job, worker, name``.
Without Ray's metrics agent (``include_dashboard=False``) those calls are cheap no-ops.

It renders nothing (see ``orchestrator.telemetry.dashboard``) and is not the durable record (the output's
ledger is).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import deque
from typing import Any

import ray

from orchestrator.telemetry.counters import Counters

PUSH_INTERVAL_S = 0.5
NAMESPACE = "mathsynth"


def hub_name(out_dir: str | os.PathLike[str]) -> str:
    """Deterministic per-output-directory name of a job's hub."""
    digest = hashlib.sha256(os.path.abspath(os.fspath(out_dir)).encode()).hexdigest()[:16]
    return f"mathsynth-metrics-{digest}"


class CountingSemaphore(asyncio.Semaphore):
    """A semaphore that knows how many tasks are waiting for it (the "waiting" gauge)."""

    def __init__(self, value: int = 1) -> None:
        super().__init__(value)
        self.waiting = 0

    async def acquire(self) -> bool:
        self.waiting += 1
        try:
            return await super().acquire()
        finally:
            self.waiting -= 1


class RayExport:
    """Counters and gauges mirrored into ``ray.util.metrics`` (tags as in the module doc)."""

    def __init__(self, job: str) -> None:
        from ray.util.metrics import Counter, Gauge

        self.job = job
        self.events = Counter(
            "mathsynth_events_total",
            description="mathsynth counters: items per stage and event, requests, tokens, seeds",
            tag_keys=("job", "stage", "event", "reason"),
        )
        self.gauge = Gauge(
            "mathsynth_gauge",
            description="mathsynth gauges per worker: in_flight, waiting, replica load",
            tag_keys=("job", "worker", "name"),
        )

    def counters(self, delta: dict[str, dict[str, float]]) -> None:
        for stage, names in delta.items():
            for name, value in names.items():
                if value > 0:
                    event, _, reason = name.partition(":")
                    tags = {"job": self.job, "stage": stage, "event": event, "reason": reason}
                    self.events.inc(value, tags=tags)

    def gauges(self, worker: str, gauges: dict[str, Any]) -> None:
        flat = {k: v for k, v in gauges.items() if isinstance(v, (int, float))}
        for url, load in (gauges.get("replicas") or {}).items():
            flat[f"replica:{url}"] = load
        for name, value in flat.items():
            self.gauge.set(value, tags={"job": self.job, "worker": worker, "name": name})


@ray.remote(num_cpus=0)
class MetricsHub:
    def __init__(self, job: str = "", export: bool = True) -> None:
        self.counters = Counters()
        self.gauges: dict[str, dict[str, Any]] = {}
        self.last_push: dict[str, float] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=5)
        self.errors: deque[dict[str, Any]] = deque(maxlen=20)
        self.started = time.time()
        self.export = RayExport(job) if export else None
        self._actors: dict[str, Any] = {}

    def push(
        self,
        worker: str,
        delta: dict[str, dict[str, float]],
        gauges: dict[str, Any] | None = None,
        recent: list[dict[str, Any]] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        now = time.time()
        self.counters.merge(delta)
        self.last_push[worker] = now
        if gauges is not None:
            self.gauges[worker] = gauges
        self.recent.extend(recent or [])
        self.errors.extend({**e, "worker": worker, "time": now} for e in errors or [])
        if self.export is not None:
            self.export.counters(delta)
            if gauges is not None:
                self.export.gauges(worker, gauges)

    def register_actors(self, actors: dict[str, Any]) -> None:
        """The run's other actors, for workers (``orchestrator.engine.job_directory``)."""
        self._actors = actors

    def actors(self) -> dict[str, Any]:
        return self._actors

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        summed: dict[str, Any] = {}
        replicas: dict[str, float] = {}
        for values in self.gauges.values():
            for name, value in values.items():
                if isinstance(value, (int, float)):
                    summed[name] = summed.get(name, 0) + value
            for url, load in (values.get("replicas") or {}).items():
                replicas[url] = replicas.get(url, 0) + load
        if replicas:
            summed["replicas"] = replicas
        return {
            "counters": self.counters.as_dict(),
            "gauges": summed,
            "workers": dict(self.gauges),
            "last_push_s": {w: round(now - t, 2) for w, t in self.last_push.items()},
            "recent": list(self.recent),
            "errors": list(self.errors)[-5:],
            "elapsed_s": now - self.started,
        }


def start_hub(
    out_dir: str | os.PathLike[str],
    export: bool = True,
    options: dict[str, Any] | None = None,
    wait_s: float = 10.0,
) -> Any:
    """Start the job's named hub. A name still held by a hub that was just killed (the previous
    run into the same directory) is waited for (``wait_s``); ``ValueError`` if a live job
    keeps it (another driver writing into the same output directory on this cluster)."""
    name = hub_name(out_dir)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return MetricsHub.options(name=name, namespace=NAMESPACE, **(options or {})).remote(
                name, export
            )
        except ValueError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
