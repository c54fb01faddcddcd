"""The teacher client: one chat completion from any OpenAI-compatible server, with retries.

What it does:

* sends non-streaming ``chat.completions`` requests through ``openai.AsyncOpenAI`` (over aiohttp
  with ``use_aiohttp``, about twice the throughput of the default httpx transport) with the SDK's
  own retries switched off (``max_retries=0``), so tenacity is the single retry owner; the
  request goes through the SDK's generic ``post`` and the reply is read as plain JSON (not the
  SDK's pydantic model, see ``replies.py``), which halves the client's CPU per request;
* retries transient failures with ``tenacity.AsyncRetrying`` under the policy of ``retries.py``:
  408/409/429 and 5xx statuses, timeouts, dropped or refused connections, and malformed 200
  replies (a body that is not a chat completion, or one without choices; at most
  ``MALFORMED_MAX_ATTEMPTS`` of those per call). The wait is exponential backoff with full
  jitter (``backoff_initial_s`` doubling, capped at ``backoff_max_s``) but never shorter than the
  server's ``retry-after-ms`` / ``Retry-After`` header, itself capped at ``RETRY_AFTER_CAP_S``;
* fails at once on errors retrying cannot fix: 400/404/422 and other 4xx raise ``TeacherError``
  with ``kind`` and ``status``; 401/403 raise ``TeacherFatalError`` (the run must stop) naming
  the environment variable that holds the key (messages are built by ``failures.py``);
* counts requests, retries, failures by HTTP status / kind and tokens in ``stats``.

Errors are classified by exception type and HTTP status code only, never by message text.

When an ``on_attempt`` observer is attached, every HTTP attempt's status, response headers and
Retry-After hint are handed to it (the job's rate limiter learns ``x-ratelimit-*`` headers and
429s that way); without one, requests are sent exactly as before.

What it does NOT do: define its settings (``settings.py``), streaming, tools, ``n > 1``, rate
limiting or concurrency control (callers bound their own in-flight requests;
``TeacherSettings.limits`` is enforced by ``orchestrator.teacher.ratelimit``, not here), logging
request or response bodies, or holding the API key anywhere but inside the SDK client: the key is
never in settings, ``repr``, logs or exception messages. One ``TeacherClient`` should be used from
one event loop (the SDK client is created lazily on first use, in the loop that uses it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from orchestrator.teacher.errors import TeacherError, TeacherFatalError
from orchestrator.teacher.failures import KeySource, _describe, fatal_error, final_error
from orchestrator.teacher.replies import (
    BODY_CAUSES,
    Completion,
    _MalformedReply,
    body_cause,
    parse_completion,
)
from orchestrator.teacher.retries import (
    MALFORMED_MAX_ATTEMPTS,
    RetryAfterWait,
    _StopAfterMalformed,
    is_transient,
    retry_after_seconds,
)
from orchestrator.teacher.settings import TeacherSettings
from orchestrator.teacher.transport import transport_cause

try:  # the HTTP library under the openai SDK: httpx2 since openai 3, httpx before
    from httpx2 import Response as _HttpResponse
except ImportError:  # pragma: no cover
    from httpx import Response as _HttpResponse

__all__ = [
    "AttemptObserver",
    "TeacherClient",
    "TeacherError",
    "TeacherFatalError",
]

log = logging.getLogger(__name__)

PLACEHOLDER_API_KEY = "EMPTY"  # sent when no key is configured (local servers need none)

# (HTTP status or None for a transport failure, response headers, Retry-After seconds or None)
AttemptObserver = Callable[[int | None, Mapping[str, str], float | None], None]


class TeacherClient:
    """Chat completions from the teacher with tenacity retries (see module docstring)."""

    def __init__(self, settings: TeacherSettings, api_key: str | None = None) -> None:
        self.settings = settings
        self._key_source: KeySource
        if api_key:
            self._key_source = "argument"
        else:
            api_key = os.environ.get(settings.api_key_env) or None
            self._key_source = "env" if api_key else "none"
        self._api_key = api_key or PLACEHOLDER_API_KEY
        self.base_url = settings.base_url or os.environ.get("OPENAI_BASE_URL") or None
        self._client: openai.AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self.on_attempt: AttemptObserver | None = None  # sees every attempt's status + headers
        # False: a dropped/refused connection or timeout fails the call at once (kind
        # retries_exhausted, __cause__ the SDK error) so a replica router can re-send elsewhere.
        self.retry_connection_errors = True
        self._stats: dict[str, int] = {
            "requests": 0,
            "retries": 0,
            "completions": 0,
            "failures": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
        }

    def __repr__(self) -> str:
        return (
            f"TeacherClient(base_url={self.base_url!r}, model={self.settings.model!r}, "
            f"api_key_env={self.settings.api_key_env!r})"
        )

    # ------------------------------------------------------------------ public
    @property
    def stats(self) -> dict[str, int]:
        """Counts since creation: ``requests`` (HTTP attempts), ``retries``, ``completions``,
        ``failures`` (calls that raised), ``prompt_tokens``, ``completion_tokens``, and per
        failure ``status_<code>``, ``timeout``, ``connection_error``, ``malformed_reply``."""
        return dict(self._stats)

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
        """One chat completion; retries transient failures, raises ``TeacherError`` otherwise."""
        client = self._sdk_client()
        request = self.request_body(messages, max_tokens, temperature, top_p, stop, seed)

        s = self.settings
        attempts = 0

        async def attempt() -> Completion:
            nonlocal attempts
            attempts += 1
            return await self._attempt(client, request, attempts)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(s.max_attempts) | _StopAfterMalformed(MALFORMED_MAX_ATTEMPTS),
            wait=RetryAfterWait(s.backoff_initial_s, s.backoff_max_s),
            retry=retry_if_exception(self._retryable),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            result = await retrying(attempt)
        except (openai.APIError, _MalformedReply) as exc:
            self._bump("failures")
            error = self._final_error(exc, attempts)
            if isinstance(error, TeacherFatalError):
                raise error from None  # the SDK error's body may echo (part of) the key
            raise error from exc
        self._bump("completions")
        self._bump("prompt_tokens", result.prompt_tokens)
        self._bump("completion_tokens", result.completion_tokens)
        return result

    def request_body(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        temperature: float,
        top_p: float,
        stop: list[str] | None,
        seed: int | None,
    ) -> dict[str, Any]:
        """The ``chat.completions`` request body (also a Batch API line's ``body``)."""
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
        }
        if stop:
            body["stop"] = stop
        if seed is not None:
            body["seed"] = seed
        return body

    async def close(self) -> None:
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            await client.close()

    # ------------------------------------------------------------------ internals
    def _retryable(self, exc: BaseException) -> bool:
        if not self.retry_connection_errors and isinstance(exc, openai.APIConnectionError):
            return False
        return is_transient(exc)

    def _sdk_client(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = self._make_sdk_client()
            self._client_loop = loop
        return self._client

    def _make_sdk_client(self) -> openai.AsyncOpenAI:
        s = self.settings
        http_client = None
        if s.use_aiohttp:
            factory = getattr(openai, "DefaultAioHttpClient", None)
            try:
                http_client = factory() if factory is not None else None
            except RuntimeError:  # openai installed without the aiohttp extra
                http_client = None
            if http_client is None:
                log.warning("openai aiohttp transport unavailable; using the default httpx one")
        return openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._api_key,
            max_retries=0,
            timeout=openai.Timeout(s.read_timeout_s, connect=s.connect_timeout_s),
            http_client=http_client,
        )

    def _bump(self, name: str, by: int = 1) -> None:
        self._stats[name] = self._stats.get(name, 0) + by

    async def _attempt(
        self, client: openai.AsyncOpenAI, request: dict[str, Any], attempt: int
    ) -> Completion:
        self._bump("requests")
        observer = self.on_attempt
        raw: _HttpResponse | None = None
        try:
            # The SDK's generic POST (auth, base URL, timeouts, its error types) with the reply
            # read as plain JSON: ``chat.completions.create`` spends about as much CPU again
            # walking the request through its TypedDicts and building the pydantic reply, which
            # caps one process near a few hundred requests/s (benchmarks/saturation.py).
            raw = await client.post("/chat/completions", body=request, cast_to=_HttpResponse)
            if observer is not None:
                observer(raw.status_code, raw.headers, None)
            reply = json.loads(raw.content)
        except openai.APIStatusError as exc:
            self._bump(f"status_{exc.status_code}")
            if observer is not None:
                observer(exc.status_code, exc.response.headers, retry_after_seconds(exc))
            raise
        except openai.APIConnectionError as exc:  # by cause: the SDK calls a refusal a timeout
            self._bump("timeout" if transport_cause(exc) == "timeout" else "connection_error")
            raise
        except (json.JSONDecodeError, UnicodeDecodeError, openai.APIResponseValidationError) as e:
            self._bump("malformed_reply")
            cause = (
                body_cause(raw.content, raw.headers.get("content-type"))
                if raw is not None
                else "not_json"
            )
            raise _MalformedReply(
                f"the server answered 200 with {BODY_CAUSES[cause]}", cause
            ) from e
        try:
            return self._completion(reply, attempt)
        except _MalformedReply:
            self._bump("malformed_reply")
            raise

    def _completion(self, reply: object, attempt: int) -> Completion:
        """A ``Completion`` from the reply's JSON (the fields of OpenAI's chat.completion)."""
        return parse_completion(reply, attempt, self.settings.model)

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        self._bump("retries")
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        wait = retry_state.next_action.sleep if retry_state.next_action is not None else 0.0
        log.info(
            "teacher request failed (%s), attempt %d/%d; retrying in %.2f s",
            _describe(exc) if exc is not None else "?",
            retry_state.attempt_number,
            self.settings.max_attempts,
            wait,
        )

    def _where(self) -> str:
        return f"teacher {self.base_url or '(SDK default URL)'} model {self.settings.model!r}"

    def _final_error(self, exc: BaseException, attempts: int) -> TeacherError:
        return final_error(
            exc,
            attempts,
            where=self._where(),
            api_key_env=self.settings.api_key_env,
            api_key=self._api_key,
            key_source=self._key_source,
        )

    def _fatal_error(self, status: int, attempts: int) -> TeacherFatalError:
        return fatal_error(
            status,
            attempts,
            where=self._where(),
            api_key_env=self.settings.api_key_env,
            key_source=self._key_source,
        )
