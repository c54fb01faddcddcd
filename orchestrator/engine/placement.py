"""Where the job's Ray actors run: CPU workers spread over nodes, job state next to the driver.

- **Generation workers** ask for ``run.worker_cpus`` CPUs, zero GPUs, and the custom resources
  in ``run.worker_resources``; with ``run.spread_workers`` (default) Ray's ``SPREAD`` strategy
  puts them on as many nodes as possible, so chunks (shards) are served by every node. A
  teacher replica asks for GPUs and/or a ``teacher`` resource that workers never request, so a
  worker never holds a teacher's GPU. Give the CPU nodes a resource (``ray start --resources
  '{"worker": 8}'``) and set ``run.worker_resources: {worker: 1}`` to keep workers off teacher
  nodes altogether (their CPUs then stay free for the teacher server).
- **Job-state actors** (exact and near dedup, metrics, rate limiter) are pinned to the
  driver's node (hard node affinity). They hold state that a restart would lose (which
  questions this run admitted), so they must not live on a worker node that can be removed;
  if the driver's node goes, the driver goes with it and re-running the command resumes from
  storage.

This module only builds Ray actor options; it starts nothing and does not choose chunks.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from orchestrator.core.config import RunConfig


def current_node_id() -> str:
    """Ray node id of the calling process (driver or actor)."""
    return ray.get_runtime_context().get_node_id()


def worker_options(run: RunConfig) -> dict[str, Any]:
    """``.options(...)`` for a generation worker: CPUs and custom resources only, spread."""
    options: dict[str, Any] = {"num_cpus": run.worker_cpus, "num_gpus": 0}
    if run.worker_resources:
        options["resources"] = dict(run.worker_resources)
    if run.spread_workers:
        options["scheduling_strategy"] = "SPREAD"
    return options


def on_driver_node() -> dict[str, Any]:
    """``.options(...)`` pinning a job-state actor to the driver's node (never moved)."""
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(current_node_id(), soft=False)}
