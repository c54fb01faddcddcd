"""``teacher.kind: openai-batch``: the same ``chat()`` as ``TeacherClient``, through the provider's
Batch API (half the price at OpenAI, results within ``completion_window``).

What it does:

* collects ``chat()`` calls (up to ``batch.max_requests``, or ``batch.collect_s`` after the first
  waiting one) into one batch (``batch_api``: upload, create, poll every ``batch.poll_s``,
  download) and hands each result line to the call waiting on its ``custom_id``;
* ``custom_id`` is a content hash of the request body and of how many identical bodies this
  client saw before it, so the same seed asks the same ids on every run (identical requests of
  one seed, e.g. repeated samples, stay distinct);
* records every accepted batch in its ``BatchLedger`` (the output's ``_mathsynth/batches/``)
  before waiting on it; on the first call it loads those records, and a call whose
  ``custom_id`` is in a recorded batch polls that batch (or reads its finished results) instead
  of being submitted again: a rerun of an interrupted job creates no batch for requests already
  submitted;
* acts on each line's outcome (``batch_lines.classify``, by status code): a ``Completion``;
  resubmission in a later batch (408/409/429/5xx, lines an expired/cancelled batch did not
  finish, malformed results) up to ``max_attempts`` submissions (``MALFORMED_MAX_ATTEMPTS`` for
  malformed ones), then ``TeacherError("retries_exhausted")``; ``TeacherError`` for that call
  only on 400/404/422/other 4xx; ``TeacherFatalError`` on 401/403; kind ``batch_failed`` for
  every call of a ``failed`` batch (its record is skipped on the next run, which submits them
  again). A recorded batch the provider no longer knows (404) is marked failed and its calls
  resubmitted.

The worker lifts its per-actor in-flight cap in batch mode (``in_flight_cap``) and the engine
hands each worker enough chunks to fill ``max_requests``; the rate limiter is not used (a batch
is one request to the provider's limits). What it does NOT do: cancel batches (an interrupted
run leaves them running, so the rerun can collect them), adopt a batch whose record was never
written (a crash between ``batches.create`` and the record write re-submits those requests),
delete provider files, or stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.records import content_hash
from orchestrator.teacher.batch_api import BatchAPIClient
from orchestrator.teacher.batch_ledger import BatchLedger, BatchRecord
from orchestrator.teacher.batch_lines import LineOutcome, classify
from orchestrator.teacher.errors import TeacherError
from orchestrator.teacher.failures import _STATUS_KINDS
from orchestrator.teacher.replies import Completion, _MalformedReply
from orchestrator.teacher.retries import MALFORMED_MAX_ATTEMPTS
from orchestrator.teacher.settings import TeacherSettings

__all__ = ["BatchTeacherClient", "in_flight_cap"]

log = logging.getLogger(__name__)

UNCAPPED = 1 << 30  # "no per-worker in-flight cap" for an asyncio.Semaphore


def in_flight_cap(teacher: TeacherSettings | None, concurrency: int) -> int:
    """Teacher calls a worker keeps waiting at once: ``run.concurrency``, uncapped for batches."""
    return UNCAPPED if teacher is not None and teacher.kind == "openai-batch" else concurrency


@dataclass(eq=False)
class _Call:
    custom_id: str
    body: dict[str, Any]
    future: asyncio.Future[Completion]
    submissions: int = 0  # batches that carried it
    malformed: int = 0


@dataclass(eq=False)
class _Job:
    record: BatchRecord
    waiters: dict[str, _Call] = field(default_factory=dict)
    lines: dict[str, dict[str, Any]] | None = None  # result lines by custom_id, once read
    resumed: bool = False  # recorded by an earlier client: calls may still arrive later


class BatchTeacherClient(BatchAPIClient):
    """Chat completions through the provider's Batch API (see module docstring)."""

    def __init__(self, settings: TeacherSettings, api_key: str | None = None,
                 ledger: BatchLedger | None = None) -> None:  # fmt: skip
        super().__init__(settings, api_key)
        self.ledger = ledger  # None: nothing recorded, nothing resumed
        self._owner: dict[str, str] | None = None  # custom_id -> recorded batch (loaded lazily)
        self._records: dict[str, BatchRecord] = {}
        self._load_lock = asyncio.Lock()
        self._jobs: dict[str, _Job] = {}
        self._queue: list[_Call] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._seen: Counter[str] = Counter()
        for name in ("files_uploaded", "batches_submitted", "batches_resumed", "batch_polls",
                     "downloads", "resubmitted"):  # fmt: skip
            self._stats[name] = 0

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> Completion:
        """One chat completion, answered by a batch line; raises ``TeacherError`` otherwise."""
        body = self.request_body(messages, max_tokens, temperature, top_p, stop, seed)
        key = content_hash(body, length=32)
        cid = "ms-" + content_hash(key, self._seen[key], length=32)
        self._seen[key] += 1
        call = _Call(cid, body, asyncio.get_running_loop().create_future())
        owner = (await self._index()).get(cid)
        if owner is not None and owner in self._records:
            self._watch(owner, call)
        else:
            self._enqueue(call)
        try:
            result = await call.future
        except TeacherError:
            self._bump("failures")
            raise
        self._bump("completions")
        self._bump("prompt_tokens", result.prompt_tokens)
        self._bump("completion_tokens", result.completion_tokens)
        return result

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await super().close()

    # ------------------------------------------------------------------ waiting calls
    async def _index(self) -> dict[str, str]:
        async with self._load_lock:
            if self._owner is None:
                ledger = self.ledger
                found = await asyncio.to_thread(ledger.index, self.base_url) if ledger else None
                self._owner, self._records = found or ({}, {})
        return self._owner

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _watch(self, batch_id: str, call: _Call) -> None:
        """Wait on a batch recorded by an earlier run (or read its results if already read)."""
        job = self._jobs.get(batch_id)
        if job is None:
            job = self._jobs[batch_id] = _Job(self._records[batch_id], resumed=True)
            self._bump("batches_resumed")
            log.info("waiting on recorded batch %s instead of resubmitting", batch_id)
            self._spawn(self._poll(job))
        call.submissions = max(call.submissions, 1)
        if job.lines is None:
            job.waiters[call.custom_id] = call
        else:
            self._settle(job, call)

    def _enqueue(self, call: _Call) -> None:
        self._queue.append(call)
        if len(self._queue) >= self.settings.batch.max_requests:
            self._flush(force=False)
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.settings.batch.collect_s, self._flush, True)

    def _flush(self, force: bool) -> None:
        if force:
            self._timer = None
        size = self.settings.batch.max_requests
        queue = [c for c in self._queue if not c.future.done()]  # cancelled callers drop out
        while len(queue) >= size or (force and queue):
            self._spawn(self._submit(queue[:size]))
            queue = queue[size:]
        self._queue = queue
        if not queue and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, call: _Call, error: TeacherError) -> None:
        if not call.future.done():
            call.future.set_exception(error)

    def _retry(self, call: _Call, status: int | None, why: str) -> None:
        """Submit ``call`` again in a later batch, or fail it after ``max_attempts``."""
        if call.future.done():
            return
        if call.submissions >= self.settings.max_attempts:
            self._fail(call, TeacherError(
                f"{self._where()}: gave up after {call.submissions} batch submission(s); "
                f"last outcome {why}", "retries_exhausted", status, call.submissions))  # fmt: skip
            return
        self._bump("resubmitted")
        self._enqueue(call)

    # ------------------------------------------------------------------ batches
    async def _submit(self, calls: list[_Call]) -> None:
        ids = [c.custom_id for c in calls]
        for call in calls:
            call.submissions += 1
        try:
            batch = await self.submit_batch([(c.custom_id, c.body) for c in calls])
        except TeacherError as err:
            for call in calls:
                self._fail(call, err)
            return
        record = BatchRecord(batch_id=batch.id, input_file_id=batch.input_file_id,
                             base_url=self.base_url, custom_ids=ids, status=batch.status,
                             created_at=float(batch.created_at))  # fmt: skip
        await self._save(record)
        job = _Job(record, {c.custom_id: c for c in calls})
        self._jobs[batch.id] = job
        await self._poll(job)

    async def _poll(self, job: _Job) -> None:
        """Poll ``job`` until it is final, read its result files, settle its waiting calls."""
        bid = job.record.batch_id
        try:
            batch, lines = await self.wait_batch(bid)
        except TeacherError as err:
            self._jobs.pop(bid, None)
            waiting, job.waiters = list(job.waiters.values()), {}
            lost = err.status == 404  # the provider no longer has this batch or its results
            if lost:
                self._records.pop(bid, None)  # later calls of this batch are submitted anew
                job.record = job.record.model_copy(update={"status": "failed"})
                await self._save(job.record)
            for call in waiting:
                self._retry(call, 404, "batch lost") if lost else self._fail(call, err)
            return
        final = {"status": batch.status, "output_file_id": batch.output_file_id,
                 "error_file_id": batch.error_file_id}  # fmt: skip
        job.record = job.record.model_copy(update=final)
        await self._save(job.record)
        job.lines = lines
        waiting, job.waiters = list(job.waiters.values()), {}
        for call in waiting:
            self._settle(job, call)
        if not job.resumed:  # every call of a fresh batch was waiting already
            self._jobs.pop(bid, None)

    async def _save(self, record: BatchRecord) -> None:
        if self.ledger is not None:
            await asyncio.to_thread(self.ledger.save, record)

    # ------------------------------------------------------------------ result lines
    def _settle(self, job: _Job, call: _Call) -> None:
        assert job.lines is not None
        outcome = classify(job.lines.get(call.custom_id), job.record.status)
        if outcome.status is not None and outcome.status != 200:
            self._bump(f"status_{outcome.status}")
        if outcome.action == "ok":
            try:
                completion = self._completion(outcome.body, call.submissions)
            except _MalformedReply:
                outcome = LineOutcome("malformed", 200, "result is not a chat completion")
            else:
                if not call.future.done():
                    call.future.set_result(completion)
                return
        if outcome.action == "malformed":
            self._bump("malformed_reply")
            call.malformed += 1
            if call.malformed < MALFORMED_MAX_ATTEMPTS:
                self._retry(call, 200, outcome.why)
            else:
                why = f"{self._where()}: {outcome.why}, {call.malformed} time(s)"
                self._fail(call, TeacherError(why, "malformed_reply", None, call.submissions))
        elif outcome.action == "retry":
            self._retry(call, outcome.status, outcome.why)
        elif outcome.status in (401, 403):
            self._fail(call, self._fatal_error(outcome.status, call.submissions))
        else:
            kind = "batch_failed" if outcome.status is None else _STATUS_KINDS.get(
                outcome.status, "client_error")  # fmt: skip
            where = f"{self._where()}: batch {job.record.batch_id}"
            self._fail(call, TeacherError(f"{where}: {outcome.why}", kind, outcome.status,
                                          call.submissions))  # fmt: skip
