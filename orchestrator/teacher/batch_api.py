"""The provider's Batch API calls (files + batches), each retried like a chat request.

``BatchAPIClient`` extends ``TeacherClient`` (same SDK client, settings, retry policy, error
classification and ``stats``) with two operations:

* ``submit_batch(requests)``: upload the JSONL input file (``files.create(purpose="batch")``)
  and create the batch (``batches.create`` on ``/v1/chat/completions`` with
  ``batch.completion_window``); returns the provider's ``Batch``;
* ``wait_batch(batch_id)``: poll ``batches.retrieve`` every ``batch.poll_s`` until the batch is
  final (completed / failed / expired / cancelled), then download its output and error files
  (``files.content``); returns the final ``Batch`` and its result lines by ``custom_id``.

Every call is retried by tenacity on transient errors (408/409/429/5xx, timeouts, dropped
connections) with the client's backoff and Retry-After handling, up to ``max_attempts``; a final
failure raises ``TeacherError`` (``TeacherFatalError`` for 401/403), classified by status code.
Counted in ``stats``: ``files_uploaded``, ``batches_submitted``, ``batch_polls``,
``downloads``, ``api_status_<code>`` and ``requests`` (one per submitted line).

What it does NOT do: decide what a result line means (``batch_lines``), record batches
(``batch_ledger``), route results to callers or cancel batches (``batch_client``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import openai
from openai.types import Batch
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from orchestrator.core.records import content_hash
from orchestrator.teacher.batch_ledger import FINAL_STATUSES
from orchestrator.teacher.batch_lines import ENDPOINT, input_jsonl, parse_results
from orchestrator.teacher.client import TeacherClient
from orchestrator.teacher.errors import TeacherFatalError
from orchestrator.teacher.retries import RetryAfterWait, is_transient

__all__ = ["BatchAPIClient"]

T = TypeVar("T")


class BatchAPIClient(TeacherClient):
    """``TeacherClient`` plus the Batch API operations (see module docstring)."""

    async def _api(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """One Batch API call with tenacity retries; final errors become ``TeacherError``."""
        s, attempts = self.settings, 0

        async def attempt() -> T:
            nonlocal attempts
            attempts += 1
            try:
                return await fn(*args, **kwargs)
            except openai.APIStatusError as exc:
                self._bump(f"api_status_{exc.status_code}")
                raise

        retrying = AsyncRetrying(
            stop=stop_after_attempt(s.max_attempts),
            wait=RetryAfterWait(s.backoff_initial_s, s.backoff_max_s),
            retry=retry_if_exception(is_transient),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            return await retrying(attempt)
        except openai.APIError as exc:
            error = self._final_error(exc, attempts)
            if isinstance(error, TeacherFatalError):
                raise error from None  # the SDK error's body may echo (part of) the key
            raise error from exc

    async def submit_batch(self, requests: list[tuple[str, dict[str, Any]]]) -> Batch:
        """Upload ``(custom_id, body)`` requests as one input file and create their batch."""
        client = self._sdk_client()
        name = f"mathsynth-{content_hash([cid for cid, _ in requests])}.jsonl"
        self._bump("requests", len(requests))
        upload = await self._api(
            client.files.create, file=(name, input_jsonl(requests)), purpose="batch"
        )
        self._bump("files_uploaded")
        batch = await self._api(
            client.batches.create, input_file_id=upload.id, endpoint=ENDPOINT,
            completion_window=self.settings.batch.completion_window,
            metadata={"source": "mathsynth"},
        )  # fmt: skip
        self._bump("batches_submitted")
        return batch

    async def wait_batch(self, batch_id: str) -> tuple[Batch, dict[str, dict[str, Any]]]:
        """Poll until ``batch_id`` is final; return it and its result lines by custom_id."""
        client = self._sdk_client()
        while True:
            batch = await self._api(client.batches.retrieve, batch_id)
            self._bump("batch_polls")
            if batch.status in FINAL_STATUSES:
                break
            await asyncio.sleep(self.settings.batch.poll_s)
        lines: dict[str, dict[str, Any]] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = await self._api(client.files.content, file_id)
                self._bump("downloads")
                lines.update(parse_results(content.text))
        return batch, lines
