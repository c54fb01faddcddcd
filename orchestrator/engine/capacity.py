"""How many generation workers the Ray cluster can actually hold.

A worker asks for ``run.worker_cpus`` CPUs plus ``run.worker_resources``
(``orchestrator.engine.placement``). Ray never fails an actor it cannot place: it stays
pending, the chunks handed to it never run, and the run waits forever. So before the workers
(and the job's other actors) are created, ``size_workers`` counts how many fit, node by node (a
worker lives on one node):

* in what the live nodes have in total, less what the run's own teacher replicas reserve on a
  one-node Ray (``reserved``): none fits is ``CapacityError``, saying what one worker asks for
  and what the cluster has; fewer than ``--workers`` asks start that many, and the note says
  what was asked and what exists;
* then in what is free right now (other jobs or actors hold the rest): fewer free than that
  start as many as are free (at least one, which then waits for its resources), and the note
  says so. A worker that is created is then always placed, so no chunk waits on it forever.

What it does NOT do: create actors, or foresee nodes an autoscaler has not started yet (start
a cluster's CPU nodes, e.g. its ``min_workers``, before the run).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from orchestrator.core.config import RunConfig
from orchestrator.engine.placement import worker_options
from orchestrator.teacher.settings import TeacherSettings

__all__ = ["CapacityError", "job_workers", "size_workers", "worker_demand"]

log = logging.getLogger(__name__)

_EPS = 1e-9


class CapacityError(RuntimeError):
    """No node of the Ray cluster can hold one generation worker."""


def worker_demand(options: dict[str, Any]) -> dict[str, float]:
    """Resources one worker reserves, from its ``.options(...)``."""
    demand = {
        "CPU": float(options.get("num_cpus") or 0),
        "GPU": float(options.get("num_gpus") or 0),
    }
    demand.update({k: float(v) for k, v in (options.get("resources") or {}).items()})
    return {k: v for k, v in demand.items() if v > 0}


def _fits(nodes: list[dict[str, float]], demand: dict[str, float]) -> int:
    if not demand:
        return 10**9  # asks for nothing: Ray places any number
    return sum(
        min(math.floor(node.get(k, 0.0) / v + _EPS) for k, v in demand.items()) for node in nodes
    )


def _nodes() -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """(total, free) resources of every live node."""
    from ray._private import state  # DeveloperAPI: the GCS's per-node view

    total = state.total_resources_per_node()
    free = state.available_resources_per_node()
    return list(total.values()), [free.get(node, {}) for node in total]


def _describe(resources: dict[str, float]) -> str:
    skip = ("node:", "memory", "object_store_memory", "accelerator_type:")
    shown = {k: v for k, v in sorted(resources.items()) if not k.startswith(skip)}
    return ", ".join(f"{k} {v:g}" for k, v in shown.items()) or "nothing"


def size_workers(
    requested: int, options: dict[str, Any], reserved: dict[str, float] | None = None
) -> tuple[int, str | None]:
    """(workers to start, a note for the user or None); raises ``CapacityError`` when none
    fits. ``reserved``: what the run's teacher replicas hold (subtracted on a one-node Ray)."""
    demand = worker_demand(options)
    totals, free = _nodes()
    cluster = {k: sum(n.get(k, 0.0) for n in totals) for k in {k for n in totals for k in n}}
    nodes = totals
    if reserved and len(totals) == 1:
        nodes = [{k: v - reserved.get(k, 0.0) for k, v in totals[0].items()}]
    room = _fits(nodes, demand)
    if room < 1:
        held = f", of which teacher replicas hold {_describe(reserved)}" if reserved else ""
        raise CapacityError(
            f"a generation worker asks for {_describe(demand)}, and no node of this Ray "
            f"cluster has that (cluster: {_describe(cluster)}{held}); lower run.worker_cpus "
            "or drop run.worker_resources, or add nodes"
        )
    n, note = requested, None
    if requested > room:
        n, note = (
            room,
            (
                f"--workers {requested} asked, but this Ray cluster has room for {room} (each "
                f"worker asks for {_describe(demand)}; cluster: {_describe(cluster)}): starting {room}"
            ),
        )
    now = _fits(free, demand)
    if now < n:
        available = {k: sum(f.get(k, 0.0) for f in free) for k in cluster}
        n, note = (
            max(now, 1),
            (
                f"--workers {requested} asked; the Ray cluster has room for {room}, but other jobs "
                f"or actors hold part of it (free now: {_describe(available)}; each worker asks "
                f"for {_describe(demand)}): starting {max(now, 1)}"
            ),
        )
    return n, note


def job_workers(run: RunConfig, n_chunks: int, replicas: TeacherSettings | None = None) -> int:
    """Workers a job starts: ``run.workers``, no more than it has chunks, nor than the cluster
    holds; the note (fewer than asked) is logged as a warning. ``replicas``: the teacher
    settings when the job started vLLM replicas (their reservation is subtracted)."""
    reserved: dict[str, float] = {}
    if replicas is not None:
        per_replica = {"CPU": replicas.replica.num_cpus, **replicas.replica.resources}
        reserved = {k: v * replicas.replicas for k, v in per_replica.items()}
    n, note = size_workers(max(1, min(run.workers, n_chunks)), worker_options(run), reserved)
    if note:
        log.warning(note)
    return n
