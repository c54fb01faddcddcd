"""The actors of one run: started in order, stopped together.

``start_teacher_pool`` brings up the teacher replicas of ``teacher.kind: vllm`` (before anything
else, the decontamination index included: they hold the GPUs, and a node without vLLM should
stop the run at once). ``RunActors.start`` then brings up, on the run's Ray: the metrics hub
(named per output directory; it also lists the run's other actors for the workers,
``orchestrator.engine.job_directory``), the job's ``RateLimiter`` only when hosted-API limits
apply (configured, or learned from a hosted API's headers), and the generation workers, sized to
what the cluster can hold (``orchestrator.engine.capacity``) and given the storage environment
they need to open the output. ``stop`` ends them all (workers first, asked to close their
clients), and returns the replicas' state for the summary. Only what a pipeline uses is started.

It does not dispatch work or write output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ray

from orchestrator.core.config import PipelineConfig
from orchestrator.engine.capacity import CapacityError, job_workers
from orchestrator.engine.dispatch import FatalRunError
from orchestrator.engine.job_directory import JobActors, publish
from orchestrator.engine.placement import on_driver_node, worker_options
from orchestrator.engine.worker import GenerationWorker
from orchestrator.output.store import OutputStore
from orchestrator.teacher.launch import TeacherSetupError
from orchestrator.teacher.pool import ReplicaPool
from orchestrator.teacher.ratelimit import RateLimiter
from orchestrator.teacher.settings import RateLimits
from orchestrator.telemetry.metrics import hub_name, start_hub


@dataclass
class RunActors:
    workers: list[Any]
    metrics: Any
    limiter: Any = None
    pool: ReplicaPool | None = None
    cfg: PipelineConfig | None = None  # as the workers got it (limits decided)
    extra: list[Any] = field(default_factory=list)

    @classmethod
    def start(
        cls, cfg: PipelineConfig, store: OutputStore, *, api_key: str | None, n_chunks: int,
        contamination: Any, telemetry: bool, started_ray: bool, pool: ReplicaPool | None,
    ) -> RunActors:  # fmt: skip
        """Start the run's actors (module docstring); ``contamination``: the decontamination
        index's object ref, or None; ``pool``: the replicas ``start_teacher_pool`` started."""
        pinned = on_driver_node()  # job state lives with the driver (engine.placement)
        try:  # named per output dir: ``mathsynth watch`` and other drivers find it
            metrics = start_hub(store.url, export=telemetry, options=pinned)
        except ValueError as err:
            raise FatalRunError(f"another live run is writing into {store.url}: {err}") from None
        cfg, limits = _resolved_limits(cfg)
        limiter = (  # hosted-API limits shared by every worker (teacher/ratelimit.py)
            RateLimiter.options(**pinned).remote(limits.model_dump()) if limits else None
        )
        directory = publish(  # orchestrator.engine.job_directory: why by name
            metrics, hub_name(store.url),
            JobActors(metrics, [contamination] if contamination is not None else None, limiter,
                      pool.supervisor if pool else None),
        )  # fmt: skip
        n_workers = _size_workers(cfg, n_chunks, pool, started_ray)
        workers = [
            GenerationWorker.options(**worker_options(cfg.run), **_storage_env(store)).remote(
                f"worker-{i}", cfg.model_dump_json(), store.url, directory, api_key
            )
            for i in range(n_workers)
        ]
        return cls(workers, metrics, limiter, pool, cfg)

    def stop(self, snapshot: dict[str, Any], interrupted: bool) -> Any:
        """Stop every actor; returns the replicas' state for the summary (None without)."""
        if not interrupted:  # (a worker that cannot come back does not answer)
            closing = [w.shutdown.remote() for w in self.workers]
            ray.wait(closing, num_returns=len(closing), timeout=10)
        for actor in [*self.workers, self.metrics, *([self.limiter] if self.limiter else [])]:
            ray.kill(actor)
        return _stop_teacher_pool(self.pool, snapshot)


def _storage_env(store: OutputStore) -> dict[str, Any]:
    """Actor options giving workers on every node the driver's storage settings (``AWS_*``,
    ``FSSPEC_*``, ...; ``orchestrator.output.storage``): they open ``--out`` as the driver does."""
    env = store.worker_env()
    return {"runtime_env": {"env_vars": env}} if env else {}


def _resolved_limits(cfg: PipelineConfig) -> tuple[PipelineConfig, RateLimits | None]:
    """The teacher's rate limits with ``learn_from_headers`` decided for its URL, in the config
    the workers get, and the limits a ``RateLimiter`` must enforce (None: no limiter, e.g. a
    self-hosted server without configured limits, or the Batch API)."""
    teacher = cfg.teacher
    if teacher is None or teacher.kind == "openai-batch":
        return cfg, None
    learn = teacher.limits.learns(teacher.base_url)
    limits = teacher.limits.model_copy(update={"learn_from_headers": learn})
    cfg = cfg.model_copy(update={"teacher": teacher.model_copy(update={"limits": limits})})
    return cfg, limits if limits.configured() or learn else None


def start_teacher_pool(cfg: PipelineConfig, started_ray: bool) -> ReplicaPool | None:
    """``teacher.kind: vllm``: start the replicas (returns once one is healthy), first of all
    the run's actors: a node without vLLM or a model that does not load stops the run before
    anything else is built."""
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
