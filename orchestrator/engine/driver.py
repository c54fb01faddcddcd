"""The driver: shard seeds over Ray workers, finalize their output, account for every seed.

``run_job`` prepares the output directory (cleans leftovers of an interrupted run, checks the
pipeline fingerprint), reads the ledger so finished seeds cost no teacher request, and starts
the run's actors: ``GenerationWorker``s, the metrics hub, a ``RateLimiter`` for hosted-API
limits when limits apply and, for ``teacher.kind: vllm``, a pool of teacher replica actors.
Workers turn chunks of seeds (``orchestrator.engine.chunks``) into candidate commits; the
``Finalizer`` (``orchestrator.engine.finalize``), here in the driver, deduplicates their rows in
seed order and commits the dataset, so the output does not depend on worker count or timing.
The loop itself is ``orchestrator.engine.dispatch``. Ctrl-C (or SIGTERM from ``ray job stop``)
asks every worker to commit what it finished, finalizes what can be, then stops.

Failing fast (each decided in its own module, hooked in here): the teacher is checked before
anything starts (``orchestrator.teacher.preflight``, when asked), workers are sized to what the
cluster can hold (``orchestrator.engine.capacity``), the run stops when its first seeds all fail
one persistent way (``orchestrator.engine.failure_stop``, in the dispatch loop), a worker's
storage error ends the run naming the file, and a private Ray sweeps what killed earlier runs left
(``orchestrator.engine.ray_leftovers``).

Ray does the distribution; this module only wires the run together. The progress view and the
summary are built by ``orchestrator.telemetry.job_report``; rendering is the caller's
(``on_progress``).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from orchestrator import __version__
from orchestrator.core.config import ConfigError, PipelineConfig
from orchestrator.core.records import Record
from orchestrator.core.seeds import Seeds
from orchestrator.engine.budget import CostBudget
from orchestrator.engine.chunks import ChunkFeed
from orchestrator.engine.dispatch import Dispatch, FatalRunError
from orchestrator.engine.failure_stop import FailureStop
from orchestrator.engine.finalize import Finalizer
from orchestrator.engine.ray_session import RayStart
from orchestrator.engine.rebuild import check_configuration
from orchestrator.engine.run_actors import RunActors, start_teacher_pool
from orchestrator.methods.catalog import fingerprint, row_schema
from orchestrator.output.accounting import SUMMED, RunLog, write_summary
from orchestrator.output.card import write_card
from orchestrator.output.ledger import DONE
from orchestrator.output.length_rejected import length_rejected
from orchestrator.output.lock import OutputLock
from orchestrator.output.replies import ReplyIndex
from orchestrator.output.store import OutputStore
from orchestrator.quality.decontam import build_index
from orchestrator.teacher.preflight import check_teacher
from orchestrator.teacher.pricing import Price, price_for
from orchestrator.telemetry.actor_state import ClusterState
from orchestrator.telemetry.job_report import (
    JobState,
    ProgressFn,
    build_summary,
    progress_sink,
    progress_view,
)

__all__ = ["FatalRunError", "run_job"]
from orchestrator.telemetry.progress import ProgressFile
from orchestrator.telemetry.startup import StartupFn, no_startup

log = logging.getLogger(__name__)


def _earlier_rows(out_dir: str) -> list[tuple[str, str]]:
    """(question, id) of every row of an earlier mathsynth output (``dedup.against``)."""
    store = OutputStore(out_dir)
    if not store.committed_files():
        raise FatalRunError(f"dedup.against: {out_dir} holds no mathsynth data (data/train-*)")
    return store.read_ledger().questions


def run_job(
    cfg: PipelineConfig,
    seeds: Seeds,
    out_dir: str | Path,
    *,
    api_key: str | None = None,
    on_progress: ProgressFn | None = None,
    allow_config_change: bool = False,
    poll_s: float = 0.5,
    telemetry: bool = True,
    on_startup: StartupFn = no_startup,
    preflight: bool = False,
    retry_length_rejected: bool = False,
    ray_start: RayStart | None = None,
) -> dict[str, Any]:
    """Run the pipeline over ``seeds`` into ``out_dir``; returns (and writes) the summary.

    ``telemetry``: export counters to ``ray.util.metrics``, keep ``_mathsynth/progress.json``
    and per-actor state for ``mathsynth watch`` (off only to measure its overhead).
    ``on_startup(step)``: each start-up step as it begins (until the first ``on_progress``).
    ``preflight``: check the teacher before starting anything when seeds are pending
    (``orchestrator.teacher.preflight``; raises ``TeacherUnavailable``); the CLI does.
    ``retry_length_rejected``: seeds rejected only for ``length`` are run again
    (``orchestrator.output.length_rejected``; they are final otherwise). ``ray_start``: a
    ``RayStart`` the caller began earlier (so Ray comes up while it loads seeds); run_job
    closes it, as the one it starts otherwise. Raises ``OutputLocked`` while another run
    writes into ``out_dir``."""
    opts = _Options(api_key, on_progress, allow_config_change, poll_s, telemetry, on_startup,
                    preflight, retry_length_rejected)  # fmt: skip
    on_startup("reading the output directory")
    store = OutputStore(out_dir, row_schema(cfg))  # the finalizer writes the method's rows
    price = price_for(cfg.teacher.model, cfg.teacher.price) if cfg.teacher else None
    if cfg.run.max_cost_usd and price is None:
        model = cfg.teacher.model if cfg.teacher else None
        raise ConfigError(
            f"--max-cost needs the teacher's price: model {model!r} is not in the price "
            "table; set teacher.price {input_per_m, output_per_m}"
        )
    try:
        with OutputLock(store.storage) as lock:  # before anything on storage changes
            if ray_start is None:  # comes up while the output, seeds, teacher are checked
                ray_start = RayStart()
                on_startup("connecting to Ray" if ray_start.joins else "starting Ray")
            try:
                return _run(cfg, seeds, store, lock, ray_start, price, opts)
            finally:  # before the lock is given back; a no-op once _run shut Ray down
                ray_start.close()
    finally:
        if ray_start is not None:  # the caller's start when the lock was refused
            ray_start.close()


@dataclass(frozen=True)
class _Options:
    """``run_job``'s keyword arguments (see its docstring)."""

    api_key: str | None
    on_progress: ProgressFn | None
    allow_config_change: bool
    poll_s: float
    telemetry: bool
    on_startup: StartupFn
    preflight: bool
    retry_length_rejected: bool


def _run(
    cfg: PipelineConfig, seeds: Seeds, store: OutputStore, lock: OutputLock,
    ray_start: RayStart, price: Price | None, opts: _Options,
) -> dict[str, Any]:  # fmt: skip
    started = time.time()
    api_key, on_startup = opts.api_key, opts.on_startup
    store.prepare()
    store.cleanup()
    rebuilt = check_configuration(store, cfg, opts.allow_config_change)
    ledger = store.read_ledger()
    finished = ledger.finished
    if opts.retry_length_rejected:  # after raising the budget (orchestrator.output.length_rejected)
        finished = finished - length_rejected(store, ledger.outcomes)
    total = len(seeds)  # reads a streamed seed file once (and finds a bad row now)
    # a fresh output: every seed is pending, no second pass over the seed file
    n_pending = sum(1 for s in seeds if s.id not in finished) if finished else total
    run = cfg.run
    if opts.preflight and n_pending and cfg.teacher is not None:
        on_startup("checking the teacher")
        for warning in check_teacher(cfg.teacher, api_key):
            log.warning(warning)
    state = JobState(total, total - n_pending, 0)
    run_info = {"run_id": f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(started))}-{lock.owner[:8]}",
                "started": started, "version": __version__, "fingerprint": fingerprint(cfg)}  # fmt: skip
    run_log = RunLog(store, run_info["run_id"])
    run_log.write({**run_info, "state": "running", "seeds_read": total})
    finalizer = Finalizer(store, cfg)
    seen = ledger.questions + [q for d in cfg.dedup.against for q in _earlier_rows(d)]
    on_startup(f"loading {len(seen)} earlier questions into dedup")
    finalizer.preload(seen)
    for cid, outcomes in ledger.candidates.items():  # finished by an earlier, stopped run
        done = {seed: o for seed, o in outcomes.items() if o in DONE}  # failed ones run again
        finalizer.add(cid, done, store.candidate_rows(cid), ledger.failures)

    if not ray_start.ready:  # still starting in the background since the run began
        on_startup("waiting for Ray to start")
    started_ray = ray_start.join()
    if cfg.teacher is not None and cfg.teacher.kind == "vllm":
        on_startup("starting the teacher replicas")
    pool = start_teacher_pool(cfg, started_ray)
    contamination = None
    if cfg.decontamination.enabled:
        on_startup("building the decontamination index")
        try:
            contamination = ray.put(build_index(cfg.decontamination))
        except BaseException:
            if pool is not None:
                pool.shutdown()
            raise
    replies = None
    if run.reply_log and cfg.teacher is not None:  # answered requests are never sent again
        replies = ReplyIndex([store, *(OutputStore(d) for d in run.reuse_replies)])
        replies.scan()

    def pending() -> Iterator[Record]:
        """The seeds to run, streamed in seed order; every seed not final yet is expected by
        the finalizer at its place (those finished before only wait to be finalized)."""
        for seed in seeds:
            if seed.id in finished and seed.id in ledger.finalized:
                continue
            finalizer.expect(seed.id)
            if seed.id not in finished:
                yield seed

    feed = ChunkFeed(pending(), run.commit_every_seeds, run.max_chunk_seeds, run.chunk_target_s)
    on_startup("starting the job's actors")
    actors = RunActors.start(
        cfg, store, api_key=api_key, n_chunks=math.ceil(n_pending / run.commit_every_seeds),
        contamination=contamination, telemetry=opts.telemetry, started_ray=started_ray,
        pool=pool,
    )  # fmt: skip
    workers, metrics, teacher_pool = actors.workers, actors.metrics, actors.pool
    batched = cfg.teacher is not None and cfg.teacher.kind == "openai-batch"
    target = cfg.teacher.batch.max_requests if batched and cfg.teacher else run.concurrency
    budget = CostBudget(run.max_cost_usd, price) if run.max_cost_usd and price else None
    state.job = {"pipeline": cfg.name, "out": store.url}

    def record(view: dict[str, Any]) -> None:  # a killed run leaves its costs behind
        teacher = view.get("counters", {}).get("teacher", {})
        live: dict[str, Any] = {k: int(teacher.get(k, 0)) for k in SUMMED}
        live.update(cost_usd=view.get("cost_usd"), elapsed_s=round(time.time() - started, 2))
        run_log.write({**run_info, "state": "running", "seeds_read": total, **live}, False)

    progress = ProgressFile(store).update if opts.telemetry else None
    sink = progress_sink(opts.on_progress, progress, record)
    if opts.telemetry:
        state.cluster = ClusterState(
            {f"worker-{i}": w for i, w in enumerate(workers)},
            supervisor=teacher_pool.supervisor if teacher_pool else None,
        )
    dispatch = Dispatch(
        workers, feed, finalizer, store, state, metrics, target_in_flight=target,
        pending_total=n_pending, price=price, on_progress=sink, poll_s=opts.poll_s, lock=lock,
        replies=replies, budget=budget,
        stopper=FailureStop(run.stop_after_failures, run.stop_after_empty_seeds),
    )  # fmt: skip
    try:
        dispatch.run()
    except KeyboardInterrupt:
        pass
    finally:
        finalizer.advance()
        finalizer.commit()  # what every earlier seed allows; the rest stays a candidate
        snapshot = dispatch._push_finalizer()
        replicas = actors.stop(snapshot, state.interrupted)
        store.cleanup()  # rejected/side files of commits a dead worker never finished
    state.chunks_total = feed.handed
    committed = store.read_ledger(with_questions=False).outcomes  # what the disk says
    # what this run finished: all that is committed when the output held no outcome before
    ran = (
        (s.id for s in seeds if s.id not in finished and s.id in committed)
        if ledger.final or ledger.candidates
        else iter(committed)
    )
    state.outcomes = dict(Counter(committed[seed] for seed in ran))
    entry = build_summary(state, snapshot, store, time.time() - started, price)
    if replicas is not None:
        entry["teacher_replicas"] = replicas
    entry = {**run_info, **entry, "state": _final_state(state), "configuration_change": rebuilt}
    run_log.write(entry)
    summary = write_summary(store, entry)
    # README.md and plots/ from what is on disk now (orchestrator.output.card), drawn while
    # Ray shuts down (about a second each); on a failure before here, run_job's RayStart.close
    # shuts Ray down
    with ThreadPoolExecutor(1, thread_name_prefix="card") as drawing:
        card = drawing.submit(write_card, store)
        if started_ray:
            ray.shutdown()
        card.result()
    if sink is not None:
        sink({**progress_view(snapshot, state, price), "state": _final_state(state),
              "summary": summary})  # fmt: skip
    if state.interrupted:
        raise KeyboardInterrupt
    if state.fatal:
        raise FatalRunError(state.fatal)
    return summary


def _final_state(state: JobState) -> str:
    if state.interrupted:
        return "interrupted"
    return "failed" if state.fatal else "stopped" if state.stopped else "finished"
