"""The generation worker: a Ray actor that turns chunks of seeds into committed shards.

``run_chunk(seeds)`` processes its seeds concurrently (teacher requests bounded by the actor's
``concurrency`` slots, programs by ``sandbox_concurrency``), runs the pipeline's steps and
per-row checks, and commits the chunk as one *candidate commit* before it returns (so a
returned chunk is durable), handing the candidate rows back to the driver. Each seed ends
``accepted`` (rows kept), ``rejected`` (every item dropped, reasons stored) or ``failed`` (a
teacher request failed for good; retried on the next run; counted by its
``orchestrator.engine.failure_stop`` signature). Dedup is not decided here: the driver's
finalizer (``orchestrator.engine.finalize``) does it in seed order. ``stop()`` makes running
chunks commit what finished and return.
A ``TeacherFatalError`` (bad key) stops the chunk and is reported, not retried. Given the job's
``RateLimiter`` handle, teacher sends wait for its grants and every attempt's rate-limit headers
and 429s are reported to it (``orchestrator.teacher.ratelimit``).

The driver (``orchestrator.engine.driver``) decides which worker gets which chunk; this actor does not
schedule, and it renders nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import ray

from orchestrator.core.method_config import config_from_json
from orchestrator.core.records import Record
from orchestrator.core.stage import Stage
from orchestrator.engine.context import StepContext
from orchestrator.engine.failure_stop import COUNTER as FAILURES
from orchestrator.engine.failure_stop import signature as failure_signature
from orchestrator.engine.job_directory import JobActors
from orchestrator.engine.steps import FilterStep
from orchestrator.methods.catalog import build_steps, row_schema
from orchestrator.output.replies import ReplyWriter
from orchestrator.output.store import Commit, OutputStore
from orchestrator.quality.decontam import Decontaminate
from orchestrator.quality.ngram_index import NgramIndex
from orchestrator.sandbox import Sandbox
from orchestrator.sandbox.batch import BatchingExecutor
from orchestrator.teacher.batch_client import BatchTeacherClient, in_flight_cap
from orchestrator.teacher.batch_ledger import BatchLedger
from orchestrator.teacher.client import TeacherClient, TeacherError, TeacherFatalError
from orchestrator.teacher.limiter_client import LimiterClient
from orchestrator.teacher.routing import RoutedTeacher
from orchestrator.telemetry.counters import subtract
from orchestrator.telemetry.metrics import PUSH_INTERVAL_S, CountingSemaphore


@dataclass
class SeedResult:
    outcome: str  # accepted | rejected | failed
    kept: list[Record] = field(default_factory=list)
    rejected: list[Record] = field(default_factory=list)
    side: dict[str, list[Record]] = field(default_factory=dict)
    error: str | None = None


@ray.remote(max_restarts=3, max_task_retries=0)
class GenerationWorker:
    def __init__(
        self, name: str, config_json: str, out_dir: str, directory: str, api_key: str | None = None
    ) -> None:
        """``directory``: the name of the run's metrics hub, which lists its other actors (only
        plain values here, so a restart re-runs this safely; ``orchestrator.engine.job_directory``)."""
        self.name = name
        self.cfg = config_from_json(config_json)  # imports a user method named by `kind`
        self.store = OutputStore(out_dir, row_schema(self.cfg))
        actors = JobActors.lookup(directory)
        self.metrics = actors.metrics
        self.api_key = api_key
        self.limiter = actors.limiter
        self.teacher_pool = actors.teacher_pool  # ReplicaSupervisor of kind vllm, or None
        self.steps = build_steps(self.cfg)
        post: list[Stage] = list(self.cfg.format.build())
        index: NgramIndex | None = actors.index()
        if index is not None:
            post.insert(0, Decontaminate(index, self.cfg.decontamination.fields))
        self.post = FilterStep(post) if post else None
        self.stopping = asyncio.Event()
        self.node_ip = ray.util.get_node_ip_address()  # for the dashboard's per-node view
        self.node_id = ray.get_runtime_context().get_node_id()  # where each chunk committed
        self._ctx: StepContext | None = None
        self._reported: dict[str, dict[str, float]] = {}
        self._recent: list[dict[str, Any]] = []
        self._errors: list[dict[str, str]] = []
        self._reporter: asyncio.Task[None] | None = None
        # chunks' commits not yet written, for the "pending_commit" gauge (weak: a chunk that
        # raised leaves nothing behind)
        self._uncommitted: weakref.WeakValueDictionary[int, Commit] = weakref.WeakValueDictionary()

    def _context(self) -> StepContext:
        if self._ctx is None:
            run, teacher = self.cfg.run, self.cfg.teacher
            client = self._make_teacher()
            limiter = None
            batched = isinstance(client, BatchTeacherClient)  # no rate limiter for batches
            if client is not None and teacher and self.limiter is not None and not batched:
                limiter = LimiterClient(self.limiter, teacher.limits)
                client.on_attempt = limiter.observe
            self._ctx = StepContext(
                teacher=client,
                request_slots=CountingSemaphore(in_flight_cap(teacher, run.concurrency)),
                executor=BatchingExecutor(  # made on the first program (lazily)
                    lambda: Sandbox(self.cfg.sandbox), run.sandbox_concurrency
                ),
                limiter=limiter,
                replies=ReplyWriter(self.store, run.reply_flush_s) if run.reply_log else None,
            )
            if isinstance(client, RoutedTeacher):
                client.counters = self._ctx.counters  # re-sends, requests per replica
            self._reporter = asyncio.get_running_loop().create_task(self._report_loop())
        return self._ctx

    def _make_teacher(self) -> Any:
        """The teacher client for ``teacher.kind``: the provider's Batch API, the job's vLLM
        replicas (routed), or one OpenAI-compatible server; None without a teacher."""
        teacher = self.cfg.teacher
        if teacher is None:
            return None
        if teacher.kind == "openai-batch":  # batch ids recorded under --out: a rerun polls them
            return BatchTeacherClient(teacher, self.api_key, BatchLedger(self.store.storage))
        if self.teacher_pool is not None:
            return RoutedTeacher(teacher, self.teacher_pool, api_key=self.api_key)
        return TeacherClient(teacher, api_key=self.api_key)

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(PUSH_INTERVAL_S)
            self.push_metrics()

    def push_metrics(self) -> None:
        if self._ctx is None:
            return
        current = self._ctx.counters.as_dict()
        delta = subtract(current, self._reported)
        self._reported = current
        gauges: dict[str, Any] = {
            "in_flight": self._ctx.in_flight.value, "alive": 1,
            "waiting": getattr(self._ctx.request_slots, "waiting", 0),
            "node": self.node_ip,
            # rows accepted by every filter, not yet durable in data/ (the dashboard's "pending")
            "pending_commit": sum(len(c.rows) for c in self._uncommitted.values()),
        }  # fmt: skip
        # programs queued / running in the sandbox, its slots and slot-seconds used
        gauges.update({f"sandbox_{k}": v for k, v in self._ctx.executor.load().items()})
        replica_load = getattr(self._ctx.teacher, "replica_load", None)  # {url: in flight}
        if replica_load is not None:
            gauges["replicas"] = replica_load()
        recent, self._recent = self._recent[-5:], []
        errors, self._errors = self._errors[-5:], []
        self.metrics.push.remote(self.name, delta, gauges, recent, errors)

    async def _process_seed(
        self, seed: Record, ctx: StepContext, logged: dict[str, dict[str, Any]] | None
    ) -> SeedResult:
        """Run the pipeline for one seed (``logged``: its replies in the reply log, by key);
        raises TeacherFatalError."""
        local = ctx.for_seed(seed.id, logged)
        records = [seed]
        try:
            for step in [*self.steps, *([self.post] if self.post else [])]:
                records = await step.arun(records, local)
                if not records:
                    break
        except TeacherFatalError:
            raise
        except TeacherError as err:
            ctx.counters.add("teacher", f"error:{err.kind}")
            key = failure_signature(err)  # orchestrator.engine.failure_stop
            ctx.counters.add(FAILURES, key or "transient")
            self._errors.append({"kind": err.kind, "message": str(err), "signature": key})
            return SeedResult("failed", error=f"{err.kind}: {err}")
        return SeedResult(
            "accepted" if records else "rejected", records, local.rejected, local.side
        )

    async def run_chunk(
        self, seeds: list[dict[str, Any]], logged: dict[str, dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Process ``seeds`` and commit them as candidates; returns the commit (its id, seed
        outcomes, failures and candidate rows), outcome counts, and ``fatal`` if the run must
        stop."""
        ctx = self._context()
        commit = Commit()
        self._uncommitted[id(commit)] = commit
        fatal: str | None = None
        tasks = {
            asyncio.ensure_future(
                self._process_seed(Record.from_dict(s), ctx, (logged or {}).get(s["id"]))
            ): s["id"]
            for s in seeds
        }
        stop_wait = asyncio.ensure_future(self.stopping.wait())
        pending = set(tasks)
        try:
            while pending and fatal is None:
                done, pending = await asyncio.wait(
                    pending | {stop_wait}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stop_wait)
                for task in done - {stop_wait}:
                    seed_id = tasks[task]
                    try:
                        result = task.result()
                    except TeacherFatalError as err:
                        fatal = str(err)
                        continue
                    self._record_outcome(commit, seed_id, result, ctx)
                if stop_wait.done():
                    break
        finally:
            stop_wait.cancel()
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        cid, rows = None, []
        if ctx.replies is not None:  # object stores: the replies go up before the commit
            await asyncio.to_thread(ctx.replies.flush)
        if commit.seeds:
            cid, rows = await asyncio.to_thread(self.store.write_candidates, commit)
            ctx.counters.add("writer", "candidate_rows", len(rows))
            ctx.counters.add("writer", "rejected_rows", len(commit.rejected))
            ctx.counters.add("writer", "candidate_commits")
        self._uncommitted.pop(id(commit), None)
        self.push_metrics()
        outcomes: dict[str, int] = {}
        for outcome in commit.seeds.values():
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return {"worker": self.name, "outcomes": outcomes, "cid": cid, "seeds": commit.seeds,
                "failures": commit.failures, "rows": rows, "fatal": fatal,
                "node": self.node_id}  # fmt: skip

    def _record_outcome(
        self, commit: Commit, seed_id: str, result: SeedResult, ctx: StepContext
    ) -> None:
        commit.seeds[seed_id] = result.outcome
        ctx.counters.add("seeds", result.outcome)
        if result.error is not None:
            commit.failures[seed_id] = result.error
        commit.rows.extend(result.kept)
        commit.rejected.extend(result.rejected)
        for split, records in result.side.items():
            commit.side.setdefault(split, []).extend(records)
            ctx.counters.add("writer", f"{split}_rows", len(records))
        self._recent.extend({"question": r.question, "answer": r.answer} for r in result.kept[:1])

    async def stop(self) -> None:
        self.stopping.set()

    async def shutdown(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reporter
        if self._ctx is not None and self._ctx.teacher is not None:
            await self._ctx.teacher.close()
        if self._ctx is not None and self._ctx.replies is not None:
            await asyncio.to_thread(self._ctx.replies.close)

    def ping(self) -> float:
        return time.time()
