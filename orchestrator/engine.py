"""The driver: shard seeds over Ray workers, watch them, and account for every seed.

``run_job`` prepares the output directory (cleans leftovers of an interrupted run, checks the
pipeline fingerprint), reads the ledger so finished seeds cost no teacher request, preloads
cluster-wide dedup with the questions already written, then hands chunks of seeds to
``GenerationWorker`` actors (a few chunks outstanding per worker, so each stays saturated and
work balances itself), sharing one ``RateLimiter`` actor for the teacher's hosted-API limits.
A chunk whose actor dies is handed out again. Ctrl-C asks every worker
to commit what it finished, then stops. Ray does the distribution; this module only decides
which chunk goes next. Rendering is the caller's (``on_progress``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError

from orchestrator.config import PipelineConfig
from orchestrator.counters import Counters
from orchestrator.decontam import build_index
from orchestrator.dedup import DedupClient, ExactDedup
from orchestrator.metrics import MetricsHub
from orchestrator.near_dedup import NearDedupClient, start_near_dedup
from orchestrator.pipeline import fingerprint
from orchestrator.records import Record
from orchestrator.store import OutputStore
from orchestrator.teacher.pricing import Price, price_for
from orchestrator.teacher.ratelimit import RateLimiter
from orchestrator.worker import GenerationWorker

ProgressFn = Callable[[dict[str, Any]], None]


class FatalRunError(RuntimeError):
    """The run cannot go on (bad API key, changed configuration); nothing was half-written."""


@dataclass
class JobState:
    total_seeds: int
    skipped: int
    chunks_total: int
    outcomes: dict[str, int] = field(default_factory=dict)
    requeued_chunks: int = 0
    fatal: str | None = None
    interrupted: bool = False


def _check_fingerprint(store: OutputStore, cfg: PipelineConfig, allow_change: bool) -> None:
    path = store.root / "_mathsynth" / "run.json"
    current = {"pipeline": cfg.name, "fingerprint": fingerprint(cfg)}
    if path.exists() and not allow_change:
        previous = json.loads(path.read_text())
        if previous.get("fingerprint") != current["fingerprint"] and store.committed_files():
            raise FatalRunError(
                f"{store.root} holds data from a different pipeline configuration "
                f"({previous.get('pipeline')}, fingerprint {previous.get('fingerprint')} != "
                f"{current['fingerprint']}); use another --out, or --allow-config-change to mix"
            )
    store.write_json("_mathsynth/run.json", current)


def _earlier_rows(out_dir: str) -> list[tuple[str, str]]:
    """(question, id) of every row of an earlier mathsynth output (``dedup.against``)."""
    store = OutputStore(out_dir)
    if not store.committed_files():
        raise FatalRunError(f"dedup.against: {out_dir} holds no mathsynth data (data/train-*)")
    return store.read_ledger().questions


def ensure_ray(num_cpus: int | None = None) -> bool:
    """Connect to RAY_ADDRESS if set, else start a local Ray on loopback. True if started here."""
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": True}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", **kwargs)
    return True


def _chunks(seeds: list[Record], size: int) -> deque[list[dict[str, Any]]]:
    return deque([s.to_dict() for s in seeds[i : i + size]] for i in range(0, len(seeds), size))


def run_job(
    cfg: PipelineConfig,
    seeds: list[Record],
    out_dir: str | Path,
    *,
    api_key: str | None = None,
    on_progress: ProgressFn | None = None,
    allow_config_change: bool = False,
    poll_s: float = 0.5,
) -> dict[str, Any]:
    """Run the pipeline over ``seeds`` into ``out_dir``; returns (and writes) the summary."""
    started = time.time()
    store = OutputStore(out_dir)
    store.prepare()
    store.cleanup()
    _check_fingerprint(store, cfg, allow_config_change)
    ledger = store.read_ledger()
    pending = [s for s in seeds if s.id not in ledger.finished]
    run = cfg.run
    chunks = _chunks(pending, run.commit_every_seeds)
    state = JobState(len(seeds), len(seeds) - len(pending), len(chunks))

    started_ray = ensure_ray()
    seen = ledger.questions + [q for d in cfg.dedup.against for q in _earlier_rows(d)]
    dedup = [ExactDedup.remote() for _ in range(run.dedup_actors)]
    DedupClient(dedup).preload(seen)
    near = start_near_dedup(cfg.dedup.near) if cfg.dedup.near.enabled else []
    if near:
        NearDedupClient(near, cfg.dedup.near).preload(seen)
    contamination = (
        ray.put(build_index(cfg.decontamination)) if cfg.decontamination.enabled else None
    )
    metrics = MetricsHub.remote()
    limits = cfg.teacher.limits if cfg.teacher else None
    limiter = (  # one per job: hosted-API limits shared by every worker (teacher/ratelimit.py)
        RateLimiter.remote(limits.model_dump())
        if limits is not None and (limits.configured() or limits.learn_from_headers)
        else None
    )
    n_workers = max(1, min(run.workers, len(chunks)))
    workers = [
        GenerationWorker.options(num_cpus=run.worker_cpus).remote(
            f"worker-{i}",
            cfg.model_dump_json(),
            str(store.root),
            dedup,
            metrics,
            api_key,
            near,
            contamination,
            limiter,
        )  # fmt: skip
        for i in range(n_workers)
    ]
    per_worker = max(2, math.ceil(2 * run.concurrency / run.commit_every_seeds))
    price = price_for(cfg.teacher.model, cfg.teacher.price) if cfg.teacher else None
    snapshot: dict[str, Any] = {}
    try:
        snapshot = _dispatch(
            workers, chunks, per_worker, metrics, state, on_progress, poll_s, price
        )
    except KeyboardInterrupt:
        snapshot = ray.get(metrics.snapshot.remote(), timeout=10)
    finally:
        if not state.interrupted:
            ray.get([w.shutdown.remote() for w in workers])
        for actor in [*workers, *dedup, *near, metrics, *([limiter] if limiter else [])]:
            ray.kill(actor)
        if started_ray:
            ray.shutdown()
    summary = build_summary(state, snapshot, store, time.time() - started, price)
    store.write_json("summary.json", summary)
    if state.interrupted:
        raise KeyboardInterrupt
    if state.fatal:
        raise FatalRunError(state.fatal)
    return summary


def _dispatch(
    workers: list[Any],
    chunks: deque[list[dict[str, Any]]],
    per_worker: int,
    metrics: Any,
    state: JobState,
    on_progress: ProgressFn | None,
    poll_s: float,
    price: Price | None,
) -> dict[str, Any]:
    outstanding: dict[Any, tuple[int, list[dict[str, Any]]]] = {}
    load = [0] * len(workers)
    last_poll = 0.0
    snapshot: dict[str, Any] = {}
    try:
        while (chunks and state.fatal is None) or outstanding:
            while chunks and state.fatal is None and min(load) < per_worker:
                i = load.index(min(load))
                chunk = chunks.popleft()
                outstanding[workers[i].run_chunk.remote(chunk)] = (i, chunk)
                load[i] += 1
            ready, _ = ray.wait(list(outstanding), num_returns=1, timeout=poll_s)
            for ref in ready:
                i, chunk = outstanding.pop(ref)
                load[i] -= 1
                try:
                    result = ray.get(ref)
                except RayActorError as err:
                    state.requeued_chunks += 1
                    if state.requeued_chunks > 2 * state.chunks_total + len(workers):
                        raise FatalRunError(f"workers keep dying; last error: {err}") from err
                    chunks.appendleft(chunk)
                    continue
                for outcome, n in result["outcomes"].items():
                    state.outcomes[outcome] = state.outcomes.get(outcome, 0) + n
                if result["fatal"] and state.fatal is None:
                    state.fatal = result["fatal"]
                    ray.get([w.stop.remote() for w in workers])
            if time.monotonic() - last_poll >= poll_s or not outstanding:
                last_poll = time.monotonic()
                snapshot = ray.get(metrics.snapshot.remote())
                if on_progress is not None:
                    on_progress(_progress_view(snapshot, state, price))
    except KeyboardInterrupt:
        state.interrupted = True
        ray.get([w.stop.remote() for w in workers], timeout=10)
        if outstanding:  # let every worker commit what it finished
            ray.wait(list(outstanding), num_returns=len(outstanding), timeout=30)
        raise
    return ray.get(metrics.snapshot.remote())


def _progress_view(
    snapshot: dict[str, Any], state: JobState, price: Price | None
) -> dict[str, Any]:
    teacher = snapshot.get("counters", {}).get("teacher", {})
    done = sum(snapshot.get("counters", {}).get("seeds", {}).values())
    cost, projected = cost_estimate(teacher, price, state.total_seeds - state.skipped, int(done))
    return {
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
    rejected: dict[str, float] = {}
    produced: dict[str, float] = {}
    for group, names in counters.as_dict().items():
        if "produced" in names:
            produced[group] = names["produced"]
        for name, value in names.items():
            if name.startswith("dropped:"):
                rejected[f"{group}:{name.removeprefix('dropped:')}"] = value
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
        "requests": teacher.get("requests", 0),
        "prompt_tokens": teacher.get("prompt_tokens", 0),
        "completion_tokens": teacher.get("completion_tokens", 0),
        "teacher_errors": {k: v for k, v in teacher.items() if k.startswith("error:")},
        "cost_usd": cost,
        "projected_cost_usd": projected,
        "items_parsed_by_stage": produced,
        "rejected_by_reason": dict(sorted(rejected.items())),
        "duplicates": counters.get("dedup", "dropped:duplicate"),
        "rows_written": counters.get("writer", "rows"),
        "rows_total": len(ledger.row_ids),
        "shards_total": ledger.shards,
        "chunks_requeued": state.requeued_chunks,
        "interrupted": state.interrupted,
        "fatal": state.fatal,
        "elapsed_s": round(elapsed, 2),
    }
