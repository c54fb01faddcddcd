"""The driver: shard seeds over Ray workers, watch them, and account for every seed.

``run_job`` prepares the output directory (cleans leftovers of an interrupted run, checks the
pipeline fingerprint), reads the ledger so finished seeds cost no teacher request, preloads
cluster-wide dedup with the questions already written, then hands chunks of seeds to
``GenerationWorker`` actors (a few chunks outstanding per worker, so each stays saturated and
work balances itself), sharing one ``RateLimiter`` actor for the teacher's hosted-API limits
and, for ``teacher.kind: vllm``, one pool of teacher replica actors. A chunk whose actor dies is
handed out again, minus the seeds it already committed (``orchestrator.engine.recovery``). Ctrl-C (or
SIGTERM from ``ray job stop``) asks every worker to commit what it finished, then stops.

Failing fast (each decided in its own module, hooked in here): the teacher is checked before
anything starts (``orchestrator.teacher.preflight``, when asked), workers are sized to what the
cluster can hold (``orchestrator.engine.capacity``), the run stops when its first seeds all fail
one persistent way (``orchestrator.engine.failure_stop``), a worker's storage error ends the run
naming the file, and a private Ray sweeps what killed earlier runs left
(``orchestrator.engine.ray_leftovers``).

Ray does the distribution; this module only decides which chunk goes next. The progress view
and the summary are built by ``orchestrator.telemetry.job_report``; rendering is the caller's
(``on_progress``).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import ray
from ray._common.utils import get_default_ray_temp_dir
from ray.exceptions import RayActorError, RayTaskError

from orchestrator.core.config import PipelineConfig
from orchestrator.core.records import Record
from orchestrator.engine import ray_leftovers
from orchestrator.engine.capacity import CapacityError, job_workers
from orchestrator.engine.failure_stop import FailureStop
from orchestrator.engine.job_directory import JobActors, start_directory
from orchestrator.engine.placement import on_driver_node, worker_options
from orchestrator.engine.recovery import WorkerHealth, uncommitted, worker_died
from orchestrator.engine.worker import GenerationWorker
from orchestrator.methods.catalog import fingerprint
from orchestrator.output.length_rejected import length_rejected
from orchestrator.output.storage import StorageError
from orchestrator.output.store import OutputStore
from orchestrator.quality.decontam import build_index
from orchestrator.quality.dedup import DedupClient, ExactDedup
from orchestrator.quality.near_dedup import NearDedupClient, start_near_dedup
from orchestrator.teacher.launch import TeacherSetupError
from orchestrator.teacher.pool import ReplicaPool
from orchestrator.teacher.preflight import check_teacher
from orchestrator.teacher.pricing import Price, price_for
from orchestrator.teacher.ratelimit import RateLimiter
from orchestrator.telemetry.actor_state import ClusterState
from orchestrator.telemetry.job_report import (
    JobState,
    ProgressFn,
    build_summary,
    progress_sink,
    progress_view,
)
from orchestrator.telemetry.metrics import start_hub
from orchestrator.telemetry.progress import ProgressFile

log = logging.getLogger(__name__)


class FatalRunError(RuntimeError):
    """The run cannot go on (bad API key, changed configuration); nothing was half-written."""


def _check_fingerprint(store: OutputStore, cfg: PipelineConfig, allow_change: bool) -> None:
    current = {"pipeline": cfg.name, "fingerprint": fingerprint(cfg)}
    previous = store.read_json("_mathsynth/run.json")
    changed = previous is not None and previous.get("fingerprint") != current["fingerprint"]
    if changed and not allow_change and store.committed_files():
        raise FatalRunError(
            f"{store.url} holds data from a different pipeline configuration "
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


def _storage_env(store: OutputStore) -> dict[str, Any]:
    """Actor options giving workers on every node the driver's storage settings (``AWS_*``,
    ``FSSPEC_*``, ...; ``orchestrator.output.storage``): they open ``--out`` as the driver does."""
    env = store.worker_env()
    return {"runtime_env": {"env_vars": env}} if env else {}


def ensure_ray(num_cpus: int | None = None) -> bool:
    """Connect to RAY_ADDRESS if set, else start a local Ray on loopback. True if started here."""
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": True}
    on_sigterm = signal.getsignal(signal.SIGTERM)
    if address:
        ray.init(address=address, **kwargs)
    else:
        # address="local": a private Ray, never a cluster some other process started here
        # (RAY_ADDRESS=auto joins that one; Ray Jobs set RAY_ADDRESS for their drivers).
        # Agents and session dirs of earlier private Rays whose driver was killed go first.
        ray_leftovers.sweep(get_default_ray_temp_dir())
        ray.init(
            address="local", num_cpus=num_cpus, include_dashboard=False,
            _node_ip_address="127.0.0.1", **kwargs,
        )  # fmt: skip
        ray_leftovers.record(ray_leftovers.current_session_dir())
    # ray.init makes SIGTERM a sys.exit; keep the caller's handler (the CLI stops like Ctrl-C
    # on it, which is what `ray job stop` sends a job's driver).
    if callable(on_sigterm) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
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
    telemetry: bool = True,
    preflight: bool = False,
    retry_length_rejected: bool = False,
) -> dict[str, Any]:
    """Run the pipeline over ``seeds`` into ``out_dir``; returns (and writes) the summary.

    ``telemetry``: export counters to ``ray.util.metrics``, keep ``_mathsynth/progress.json``
    and per-actor state for ``mathsynth watch`` (off only to measure its overhead).
    ``preflight``: check the teacher before starting anything when seeds are pending
    (``orchestrator.teacher.preflight``; raises ``TeacherUnavailable``); the CLI does.
    ``retry_length_rejected``: seeds rejected only for ``length`` are run again
    (``orchestrator.output.length_rejected``; they are final otherwise)."""
    started = time.time()
    store = OutputStore(out_dir)
    store.prepare()
    store.cleanup()
    _check_fingerprint(store, cfg, allow_config_change)
    ledger = store.read_ledger()
    finished = ledger.finished
    if retry_length_rejected:  # after raising the budget (orchestrator.output.length_rejected)
        finished = finished - length_rejected(store, ledger.outcomes)
    pending = [s for s in seeds if s.id not in finished]
    run = cfg.run
    chunks = _chunks(pending, run.commit_every_seeds)
    if preflight and pending and cfg.teacher is not None:
        for warning in check_teacher(cfg.teacher, api_key):
            log.warning(warning)
    state = JobState(len(seeds), len(seeds) - len(pending), len(chunks))

    started_ray = ensure_ray()
    teacher_pool = _start_teacher_pool(cfg, started_ray)  # kind vllm: replicas before workers
    n_workers = _size_workers(cfg, len(chunks), teacher_pool, started_ray)
    seen = ledger.questions + [q for d in cfg.dedup.against for q in _earlier_rows(d)]
    pinned = on_driver_node()  # job state lives with the driver (orchestrator.engine.placement)
    dedup = [ExactDedup.options(**pinned).remote() for _ in range(run.dedup_actors)]
    DedupClient(dedup).preload(seen)
    near = start_near_dedup(cfg.dedup.near, pinned) if cfg.dedup.near.enabled else []
    if near:
        NearDedupClient(near, cfg.dedup.near).preload(seen)
    contamination = (
        ray.put(build_index(cfg.decontamination)) if cfg.decontamination.enabled else None
    )
    try:  # named per output dir: ``mathsynth watch`` and other drivers find it
        metrics = start_hub(store.url, export=telemetry, options=pinned)
    except ValueError as err:
        raise FatalRunError(f"another live run is writing into {store.url}: {err}") from None
    limits = cfg.teacher.limits if cfg.teacher and cfg.teacher.kind != "openai-batch" else None
    limiter = (  # one per job: hosted-API limits shared by every worker (teacher/ratelimit.py)
        RateLimiter.options(**pinned).remote(limits.model_dump())
        if limits is not None and (limits.configured() or limits.learn_from_headers)
        else None
    )
    directory, directory_name = start_directory(  # orchestrator.engine.job_directory: why by name
        JobActors(dedup, metrics, near, [contamination] if contamination is not None else None,
                  limiter, teacher_pool.supervisor if teacher_pool else None),
        pinned,
    )  # fmt: skip
    workers = [
        GenerationWorker.options(**worker_options(run), **_storage_env(store)).remote(
            f"worker-{i}", cfg.model_dump_json(), store.url, directory_name, api_key
        )
        for i in range(n_workers)
    ]
    batched = cfg.teacher is not None and cfg.teacher.kind == "openai-batch"
    target = cfg.teacher.batch.max_requests if batched and cfg.teacher else run.concurrency
    per_worker = max(2, math.ceil(2 * target / run.commit_every_seeds))  # chunks in flight
    price = price_for(cfg.teacher.model, cfg.teacher.price) if cfg.teacher else None
    snapshot: dict[str, Any] = {}
    state.job = {"pipeline": cfg.name, "out": store.url}
    sink = progress_sink(on_progress, ProgressFile(store).update if telemetry else None)
    if telemetry:
        state.cluster = ClusterState(
            {f"worker-{i}": w for i, w in enumerate(workers)},
            supervisor=teacher_pool.supervisor if teacher_pool else None,
        )
    try:
        snapshot = _dispatch(
            workers, chunks, per_worker, metrics, state, sink, poll_s, price, store,
            FailureStop(run.stop_after_failures),
        )  # fmt: skip
    except KeyboardInterrupt:
        snapshot = ray.get(metrics.snapshot.remote(), timeout=10)
    finally:
        if not state.interrupted:  # (a worker that cannot come back does not answer)
            closing = [w.shutdown.remote() for w in workers]
            ray.wait(closing, num_returns=len(closing), timeout=10)
        for actor in [*workers, directory, *dedup, *near, metrics, *([limiter] if limiter else [])]:
            ray.kill(actor)
        store.cleanup()  # rejected/side files of commits a dead worker never finished
        replicas = _stop_teacher_pool(teacher_pool, snapshot)
        if started_ray:
            ray.shutdown()
    summary = build_summary(state, snapshot, store, time.time() - started, price)
    if replicas is not None:
        summary["teacher_replicas"] = replicas
    store.write_json("summary.json", summary)
    if sink is not None:
        done = "interrupted" if state.interrupted else "failed" if state.fatal else "finished"
        sink({**progress_view(snapshot, state, price), "state": done, "summary": summary})
    if state.interrupted:
        raise KeyboardInterrupt
    if state.fatal:
        raise FatalRunError(state.fatal)
    return summary


def _start_teacher_pool(cfg: PipelineConfig, started_ray: bool) -> ReplicaPool | None:
    """``teacher.kind: vllm``: start the replicas (returns once one is healthy)."""
    if cfg.teacher is None or cfg.teacher.kind != "vllm":
        return None
    try:
        return ReplicaPool(cfg.teacher).start()
    except TeacherSetupError as err:
        if started_ray:
            ray.shutdown()
        raise FatalRunError(f"the teacher replicas did not start: {err}") from None


def _size_workers(
    cfg: PipelineConfig, n_chunks: int, pool: ReplicaPool | None, started_ray: bool
) -> int:
    """Workers to start (``orchestrator.engine.capacity``); on ``CapacityError`` what this run
    started is stopped first."""
    try:
        return job_workers(cfg.run, n_chunks, cfg.teacher if pool is not None else None)
    except CapacityError:
        if pool is not None:
            pool.shutdown()
        if started_ray:
            ray.shutdown()
        raise


def _stop_teacher_pool(pool: ReplicaPool | None, snapshot: dict[str, Any]) -> Any:
    """Stop the replicas; their state and the workers' re-send counts, for the summary."""
    if pool is None:
        return None
    try:
        status = pool.status()
    except ray.exceptions.RayError:  # the supervisor is gone; shutdown still kills replicas
        status = []
    pool.shutdown()
    counts = snapshot.get("counters", {}).get("teacher_replicas", {})
    return {"replicas": status, **counts}


def _stop_workers(workers: list[Any], timeout: float = 10) -> None:
    """Ask every worker to commit what it finished and return (a worker that is not running,
    e.g. still waiting for resources, never answers: not waited for past ``timeout``)."""
    stops = [w.stop.remote() for w in workers]
    ray.wait(stops, num_returns=len(stops), timeout=timeout)


def _dispatch(
    workers: list[Any],
    chunks: deque[list[dict[str, Any]]],
    per_worker: int,
    metrics: Any,
    state: JobState,
    on_progress: ProgressFn | None,
    poll_s: float,
    price: Price | None,
    store: OutputStore,
    stopper: FailureStop,
) -> dict[str, Any]:
    outstanding: dict[Any, tuple[int, list[dict[str, Any]], int]] = {}  # worker, chunk, incarnation
    load = [0] * len(workers)
    health = WorkerHealth(workers)  # died workers get no chunk until restarted
    last_poll = 0.0
    snapshot: dict[str, Any] = {}
    try:
        while (chunks and state.fatal is None) or outstanding:
            while chunks and state.fatal is None and (usable := health.usable()):
                i = min(usable, key=load.__getitem__)
                if load[i] >= per_worker:
                    break
                chunk = chunks.popleft()
                outstanding[workers[i].run_chunk.remote(chunk)] = (i, chunk, health.incarnation(i))
                load[i] += 1
            if health.all_lost():
                raise FatalRunError("every generation worker is gone (restarts used up)")
            ready: list[Any] = []
            if outstanding:
                ready, _ = ray.wait(list(outstanding), num_returns=1, timeout=poll_s)
            else:  # every worker is being restarted
                time.sleep(poll_s)
            for ref in ready:
                i, chunk, incarnation = outstanding.pop(ref)
                load[i] -= 1
                try:
                    result = ray.get(ref)
                except RayTaskError as err:  # the output cannot be written: stop, say where
                    if isinstance(err.cause, StorageError):
                        raise err.cause from None
                    raise
                except RayActorError as err:
                    if not worker_died(err):  # a job-state actor it called is gone
                        raise FatalRunError(f"a job actor died: {err}") from err
                    state.requeued_chunks += 1
                    health.died(i, incarnation)
                    if state.requeued_chunks > 2 * state.chunks_total + len(workers):
                        raise FatalRunError(f"workers keep dying; last error: {err}") from err
                    if rest := uncommitted(chunk, store):  # orchestrator.engine.recovery
                        chunks.appendleft(rest)
                    continue
                node = result.get("node", "?")
                state.chunks_by_node[node] = state.chunks_by_node.get(node, 0) + 1
                for outcome, n in result["outcomes"].items():
                    state.outcomes[outcome] = state.outcomes.get(outcome, 0) + n
                if result["fatal"] and state.fatal is None:
                    state.fatal = result["fatal"]
                    _stop_workers(workers)
            if time.monotonic() - last_poll >= poll_s or not outstanding:
                last_poll = time.monotonic()
                state.down = {f"worker-{i}": s for i, s in health.states().items()}
                state.deaths = {f"worker-{i}": n for i, n in health.deaths.items()}
                snapshot = ray.get(metrics.snapshot.remote())
                if state.fatal is None and (why := stopper.check(snapshot)):
                    state.fatal = why  # orchestrator.engine.failure_stop
                    _stop_workers(workers)
                if on_progress is not None:
                    queued = {"chunks": len(chunks), "seeds": sum(len(c) for c in chunks),
                              "outstanding_chunks": len(outstanding)}  # fmt: skip
                    on_progress(progress_view(snapshot, state, price, queued))
    except KeyboardInterrupt:
        state.interrupted = True
        _stop_workers(workers)
        if outstanding:  # let every worker commit what it finished
            ray.wait(list(outstanding), num_returns=len(outstanding), timeout=30)
        raise
    return ray.get(metrics.snapshot.remote())
