"""What the driver reports about a job: its state, the progress view and the final summary.

``JobState`` is what only the driver knows (seed totals, outcomes, requeues, per-actor state);
``progress_view`` merges it with the metrics hub's snapshot into the view that
``orchestrator.telemetry.dashboard`` renders and ``mathsynth watch`` reads; ``build_summary`` makes
``summary.json``; ``cost_estimate`` turns token counts into dollars. Nothing here talks to Ray
or renders anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.output.store import OutputStore
from orchestrator.teacher.pricing import Price
from orchestrator.telemetry.actor_state import ClusterState
from orchestrator.telemetry.counters import Counters, dropped_by_reason

ProgressFn = Callable[[dict[str, Any]], None]


@dataclass
class JobState:
    total_seeds: int
    skipped: int
    chunks_total: int
    outcomes: dict[str, int] = field(default_factory=dict)
    requeued_chunks: int = 0
    chunks_by_node: dict[str, int] = field(default_factory=dict)
    fatal: str | None = None
    stopped: str | None = None  # why no new work was started (e.g. --max-cost), not an error
    interrupted: bool = False
    job: dict[str, Any] = field(default_factory=dict)  # pipeline, out: for the dashboard
    cluster: ClusterState | None = None  # per-actor/node state for the dashboard
    down: dict[str, str] = field(default_factory=dict)  # worker name -> restarting | dead
    deaths: dict[str, int] = field(default_factory=dict)  # worker name -> times it died


def progress_sink(*fns: ProgressFn | None) -> ProgressFn | None:
    """One ``on_progress`` calling every given function (None if none)."""
    given = [f for f in fns if f is not None]
    if not given:
        return None

    def sink(view: dict[str, Any]) -> None:
        for fn in given:
            fn(view)

    return sink


def progress_view(
    snapshot: dict[str, Any],
    state: JobState,
    price: Price | None,
    queued: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The view ``orchestrator.telemetry.dashboard`` documents: the hub's snapshot plus what only the
    driver knows (seed totals, queued work, cost, actor and node state)."""
    teacher = snapshot.get("counters", {}).get("teacher", {})
    done = sum(snapshot.get("counters", {}).get("seeds", {}).values())
    cost, projected = cost_estimate(teacher, price, state.total_seeds - state.skipped, int(done))
    cluster = state.cluster
    actors, nodes = (
        cluster.poll(
            snapshot.get("last_push_s", {}), snapshot.get("workers", {}), state.down, state.deaths
        )
        if cluster is not None
        else ([], [])
    )
    return {
        "state": "running",
        "time": time.time(),
        "job": state.job,
        "queued": queued or {},
        "actors": actors,
        "nodes": nodes,
        "replica_states": cluster.replicas if cluster is not None else [],
        "fatal": state.fatal,
        **snapshot,
        "total_seeds": state.total_seeds,
        "skipped": state.skipped,
        "cost_usd": cost,
        "projected_cost_usd": projected,
    }


def cost_estimate(
    teacher: dict[str, float], price: Price | None, seeds_to_run: int, seeds_done: int
) -> tuple[float | None, float | None]:
    """Cost of the tokens used so far, and that rate extended to every seed of the run."""
    if price is None:
        return None, None
    cost = price.cost(teacher.get("prompt_tokens", 0), teacher.get("completion_tokens", 0))
    projected = cost * seeds_to_run / seeds_done if seeds_done else None
    return round(cost, 6), round(projected, 6) if projected is not None else None


def build_summary(
    state: JobState,
    snapshot: dict[str, Any],
    store: OutputStore,
    elapsed: float,
    price: Price | None = None,
) -> dict[str, Any]:
    counters = Counters(snapshot.get("counters", {}))
    teacher = counters.group("teacher")
    groups = counters.as_dict()
    rejected = dropped_by_reason(groups)
    produced = {g: names["produced"] for g, names in groups.items() if "produced" in names}
    done = sum(state.outcomes.values())
    ledger = store.read_ledger(with_questions=False)
    cost, projected = cost_estimate(teacher, price, state.total_seeds - state.skipped, done)
    return {
        "seeds_read": state.total_seeds,
        "seeds_skipped_already_finished": state.skipped,
        "seeds_accepted": state.outcomes.get("accepted", 0),
        "seeds_rejected": state.outcomes.get("rejected", 0),
        "seeds_failed": state.outcomes.get("failed", 0),
        "seeds_not_run": state.total_seeds - state.skipped - done,
        "requests": teacher.get("requests", 0),  # HTTP attempts, failed ones included
        "completions": teacher.get("completions", 0),
        "cache_hits": teacher.get("cache_hits", 0),
        "prompt_tokens": teacher.get("prompt_tokens", 0),
        "completion_tokens": teacher.get("completion_tokens", 0),
        "teacher_errors": {k: v for k, v in teacher.items() if k.startswith("error:")},
        # replies cut by max_tokens, re-asks with a larger budget, and those dropped (on_length)
        "teacher_length": {
            k: teacher.get(k, 0) for k in ("finish:length", "length_retries", "length_rejected")
        },
        "cost_usd": cost,
        "projected_cost_usd": projected,
        "items_parsed_by_stage": produced,
        "rejected_by_reason": dict(sorted(rejected.items())),
        "duplicates": counters.get("dedup", "dropped:duplicate"),
        "rows_written": counters.get("writer", "rows"),
        "rows_total": len(ledger.row_ids),
        "shards_total": ledger.shards,
        "chunks_requeued": state.requeued_chunks,
        "chunks_by_node": state.chunks_by_node,
        "interrupted": state.interrupted,
        "fatal": state.fatal,
        "stopped": state.stopped,
        "elapsed_s": round(elapsed, 2),
    }
