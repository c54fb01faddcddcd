"""The driver's loop: hand chunks to workers, feed their candidate commits to the finalizer.

``Dispatch.run`` keeps a few chunks outstanding per worker (enough to keep its in-flight slots
full, so work balances itself), takes every returned chunk's candidate commit to the finalizer
(``orchestrator.engine.finalize``), and refreshes the progress view every ``poll_s``. A chunk
whose worker died is handed out again minus the seeds it already committed, whose candidate
commit is read back from storage for the finalizer (``orchestrator.engine.recovery``); a worker
being restarted gets no chunk until it answers. A fatal teacher error (bad key), the first seeds
all failing one persistent way or all giving no row (``orchestrator.engine.failure_stop``), a
lost output lock or a worker's storage error stops every worker. Until a first seed is accepted,
chunks keep their first size and the stop is checked on every returned chunk, so a teacher that
rejects every request costs about ``stop_after_failures`` seeds, and one that answers every
request uselessly about ``stop_after_empty_seeds``, not the whole seed list. Ctrl-C (or SIGTERM)
asks every worker to commit what it finished, and the results that come back are still
finalized. Ray does the distribution; this module only decides which chunk goes where next.

It starts and stops no actor (``orchestrator.engine.driver`` does) and renders nothing.
"""

from __future__ import annotations

import math
import time
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from orchestrator.engine.budget import CostBudget
from orchestrator.engine.chunks import Chunk, ChunkFeed
from orchestrator.engine.failure_stop import FailureStop
from orchestrator.engine.finalize import Finalizer
from orchestrator.engine.recovery import WorkerHealth, recover, worker_died
from orchestrator.output.lock import OutputLock
from orchestrator.output.replies import ReplyIndex
from orchestrator.output.storage import StorageError
from orchestrator.output.store import OutputStore
from orchestrator.teacher.pricing import Price
from orchestrator.telemetry.job_report import JobState, ProgressFn, progress_view


class FatalRunError(RuntimeError):
    """The run cannot go on (bad API key, changed configuration); nothing was half-written."""


class Dispatch:
    def __init__(
        self,
        workers: list[Any],
        feed: ChunkFeed,
        finalizer: Finalizer,
        store: OutputStore,
        state: JobState,
        metrics: Any,
        *,
        target_in_flight: int,
        pending_total: int,
        price: Price | None = None,
        on_progress: ProgressFn | None = None,
        poll_s: float = 0.5,
        lock: OutputLock | None = None,
        replies: ReplyIndex | None = None,
        budget: CostBudget | None = None,
        stopper: FailureStop | None = None,
    ) -> None:
        self.workers = workers
        self.feed = feed
        self.finalizer = finalizer
        self.store = store
        self.state = state
        self.metrics = metrics
        self.target = target_in_flight
        self.pending_total = pending_total
        self.price = price
        self.on_progress = on_progress
        self.poll_s = poll_s
        self.lock = lock
        self.replies = replies  # logged replies, handed to workers with their seeds
        self.budget = budget  # --max-cost
        self.stopper = stopper  # the first seeds all failing one persistent way
        # ref -> (worker, chunk, incarnation, chunk size when cut, sent at)
        self.outstanding: dict[Any, tuple[int, Chunk, int, int, float]] = {}
        self.load = [0] * len(workers)
        self.health = WorkerHealth(workers)  # died workers get no chunk until restarted
        self.snapshot: dict[str, Any] = {}

    def run(self) -> dict[str, Any]:
        """Until every chunk is back (or the run must stop); returns the last metrics snapshot."""
        last_poll = 0.0
        try:
            while (self._more() and self.state.fatal is None) or self.outstanding:
                if self.lock is not None and self.lock.lost and self.state.fatal is None:
                    self._fail("another run took over this output's lock; stopped")
                self._send()
                if self.health.all_lost():
                    raise FatalRunError("every generation worker is gone (restarts used up)")
                ready: list[Any] = []
                if self.outstanding:
                    ready, _ = ray.wait(list(self.outstanding), num_returns=1, timeout=self.poll_s)
                else:  # every worker is being restarted
                    time.sleep(self.poll_s)
                for ref in ready:
                    self._receive(ref)
                if time.monotonic() - last_poll >= self.poll_s or not self.outstanding:
                    last_poll = time.monotonic()
                    self._progress()
        except KeyboardInterrupt:
            self.state.interrupted = True
            self._drain()
            raise
        return self._push_finalizer()

    def _more(self) -> bool:
        """Whether chunks remain to hand out (and the budget allows it)."""
        return bool(self.feed) and not (self.budget is not None and self.budget.exhausted)

    def _check_budget(self, snapshot: dict[str, Any]) -> None:
        if self.budget is None or self.state.stopped is not None:
            return
        teacher = snapshot.get("counters", {}).get("teacher", {})
        in_flight = sum(len(chunk) for _, chunk, *_ in self.outstanding.values())
        must_stop = self.budget.check(teacher, sum(self.state.outcomes.values()), in_flight)
        if self.budget.exhausted:
            self.state.stopped = self.budget.message()
        if must_stop:
            self._stop_workers()

    def _per_worker(self) -> int:
        return max(2, math.ceil(2 * self.target / self.feed.size))

    def _send(self) -> None:
        if self.budget is not None and self.budget.exhausted:
            return
        while self.feed and self.state.fatal is None and (usable := self.health.usable()):
            i = min(usable, key=self.load.__getitem__)
            if self.load[i] >= self._per_worker():
                return
            size = self.feed.size
            chunk = self.feed.take()
            logged = self.replies.lookup([s["id"] for s in chunk]) if self.replies else None
            ref = self.workers[i].run_chunk.remote(chunk, logged)
            self.outstanding[ref] = (i, chunk, self.health.incarnation(i), size, time.monotonic())
            self.load[i] += 1

    def _receive(self, ref: Any) -> None:
        i, chunk, incarnation, size, sent = self.outstanding.pop(ref)
        self.load[i] -= 1
        try:
            result = ray.get(ref)
        except RayTaskError as err:  # the output cannot be written: stop, say where
            if isinstance(err.cause, StorageError):
                raise err.cause from None
            raise
        except RayActorError as err:
            if not worker_died(err):  # a job-state actor it called is gone
                raise FatalRunError(f"a job actor died: {err}") from err
            self.state.requeued_chunks += 1
            self.health.died(i, incarnation)
            if self.state.requeued_chunks > 2 * self.feed.handed + len(self.workers):
                raise FatalRunError(f"workers keep dying; last error: {err}") from err
            self.feed.requeue(recover(chunk, self.store, self.finalizer))
            self.finalizer.advance()
            if self.replies is not None:  # what the dead worker was answered is reused
                self.replies.scan()
            return
        armed = self.stopper is not None and not self.stopper.disarmed
        if len(chunk) == size and not armed:  # chunks grow once a seed was accepted
            self.feed.finished(time.monotonic() - sent)
        node = result.get("node", "?")
        self.state.chunks_by_node[node] = self.state.chunks_by_node.get(node, 0) + 1
        for outcome, n in result["outcomes"].items():
            self.state.outcomes[outcome] = self.state.outcomes.get(outcome, 0) + n
        if result["cid"] is not None:
            self.finalizer.add(result["cid"], result["seeds"], result["rows"], result["failures"])
            self.finalizer.advance()
        if self.budget is not None or armed:  # the worker pushed its counters before replying
            snapshot = ray.get(self.metrics.snapshot.remote())
            self._check_budget(snapshot)
            self._check_failures(snapshot)  # at once: later chunks may be all the rest
        if result["fatal"] and self.state.fatal is None:
            self._fail(result["fatal"])

    def _check_failures(self, snapshot: dict[str, Any]) -> None:
        why = self.stopper.check(snapshot) if self.stopper is not None else None
        if why is not None and self.state.fatal is None:  # orchestrator.engine.failure_stop
            self._fail(why)

    def _fail(self, why: str) -> None:
        """The run cannot go on: no new chunk; every worker commits what it finished."""
        self.state.fatal = why
        self._stop_workers()

    def _stop_workers(self, timeout: float = 10) -> None:
        """Ask every worker to commit what it finished and return (a worker that is not
        running, e.g. still waiting for resources, never answers: not waited for past
        ``timeout``)."""
        stops = [w.stop.remote() for w in self.workers]
        ray.wait(stops, num_returns=len(stops), timeout=timeout)

    def _drain(self) -> None:
        """After Ctrl-C: every worker commits what it finished; take what comes back."""
        self._stop_workers()
        deadline = time.monotonic() + 30
        while self.outstanding and time.monotonic() < deadline:
            ready, _ = ray.wait(list(self.outstanding), num_returns=1, timeout=1)
            for ref in ready:
                try:
                    self._receive(ref)
                except FatalRunError:
                    continue

    def _push_finalizer(self) -> dict[str, Any]:
        """The finalizer's counters (dedup, rows written) go to the hub like a worker's."""
        delta = self.finalizer.counters.take()
        if delta:
            ray.get(self.metrics.push.remote("finalizer", delta))
        self.snapshot = ray.get(self.metrics.snapshot.remote())
        return self.snapshot

    def _progress(self) -> None:
        self.state.down = {f"worker-{i}": s for i, s in self.health.states().items()}
        self.state.deaths = {f"worker-{i}": n for i, n in self.health.deaths.items()}
        snapshot = self._push_finalizer()
        self._check_budget(snapshot)
        self._check_failures(snapshot)
        gauges = snapshot.setdefault("gauges", {})  # rows the finalizer holds count as pending
        gauges["pending_commit"] = gauges.get("pending_commit", 0) + self.finalizer.pending_rows
        if self.on_progress is not None:
            queued = {
                "seeds": self.feed.queued(self.pending_total),
                "outstanding_chunks": len(self.outstanding),
                "waiting_for_earlier_seeds": self.finalizer.waiting,
            }
            self.on_progress(progress_view(snapshot, self.state, self.price, queued))
