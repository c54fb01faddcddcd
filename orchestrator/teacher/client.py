"""The teacher client: one chat completion from any OpenAI-compatible server, with retries.

What it does:

* sends non-streaming ``chat.completions`` requests through ``openai.AsyncOpenAI`` (over aiohttp
  with ``use_aiohttp``, about twice the throughput of the default httpx transport) with the SDK's
  own retries switched off (``max_retries=0``), so tenacity is the single retry owner; the
  request goes through the SDK's generic ``post`` and the reply is read as plain JSON (not the
  SDK's pydantic model), which halves the client's CPU per request;
* retries transient failures with ``tenacity.AsyncRetrying``: 408/409/429 and 5xx statuses,
  timeouts, dropped or refused connections, and malformed 200 replies (a body that is not a chat
  completion, or one without choices; at most ``MALFORMED_MAX_ATTEMPTS`` of those per call).
  The wait is exponential backoff with full jitter (``backoff_initial_s`` doubling, capped at
  ``backoff_max_s``) but never shorter than the server's ``retry-after-ms`` / ``Retry-After``
  (seconds or HTTP-date) header, itself capped at ``RETRY_AFTER_CAP_S``;
* fails at once on errors retrying cannot fix: 400/404/422 and other 4xx raise ``TeacherError``
  with ``kind`` and ``status``; 401/403 raise ``TeacherFatalError`` (the run must stop) naming
  the environment variable that holds the key;
* counts requests, retries, failures by HTTP status / kind and tokens in ``stats``.

Errors are classified by exception type and HTTP status code only, never by message text.

When an ``on_attempt`` observer is attached, every HTTP attempt's status, response headers and
Retry-After hint are handed to it (the job's rate limiter learns ``x-ratelimit-*`` headers and
429s that way); without one, requests are sent exactly as before.

What it does NOT do: streaming, tools, ``n > 1``, rate limiting or concurrency control (callers
bound their own in-flight requests; ``TeacherSettings.limits`` is enforced by
``orchestrator.teacher.ratelimit``, not here), logging request or response bodies, or holding
the API key anywhere but inside the SDK client: the key is never in settings, ``repr``, logs or
exception messages. One ``TeacherClient`` should be used from one event loop (the SDK client is
created lazily on first use, in the loop that uses it).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timezone
from typing import Any, Literal

import openai
import pydantic
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_random_exponential

from orchestrator.teacher.errors import TeacherError, TeacherFatalError

try:  # the HTTP library under the openai SDK: httpx2 since openai 3, httpx before
    from httpx2 import Response as _HttpResponse
except ImportError:  # pragma: no cover
    from httpx import Response as _HttpResponse
from orchestrator.teacher.pricing import Price
from orchestrator.teacher.replica_config import ReplicaSettings

__all__ = [
    "AttemptObserver",
    "BatchSettings",
    "Completion",
    "RateLimits",
    "RetryAfterWait",
    "TeacherClient",
    "TeacherError",
    "TeacherFatalError",
    "TeacherSettings",
    "is_transient",
    "retry_after_seconds",
]

log = logging.getLogger(__name__)

PLACEHOLDER_API_KEY = "EMPTY"  # sent when no key is configured (local servers need none)
MALFORMED_MAX_ATTEMPTS = 3  # malformed 200 replies tolerated per call before giving up
RETRY_AFTER_CAP_S = 600.0  # a server-requested wait longer than this is clamped to it
TRANSIENT_STATUSES = frozenset({408, 409, 429})  # plus every status >= 500
_STATUS_KINDS = {400: "bad_request", 404: "not_found", 422: "unprocessable"}
_FATAL_KINDS = {401: "unauthorized", 403: "forbidden"}
_DETAIL_CHARS = 500


class RateLimits(pydantic.BaseModel):
    """Hosted-API limits shared by every actor of a job (None = unlimited); enforced by
    ``orchestrator.teacher.ratelimit``."""

    model_config = pydantic.ConfigDict(extra="forbid")

    requests_per_minute: float | None = pydantic.Field(None, gt=0)
    tokens_per_minute: float | None = pydantic.Field(None, gt=0)  # input + output
    input_tokens_per_minute: float | None = pydantic.Field(None, gt=0)
    output_tokens_per_minute: float | None = pydantic.Field(None, gt=0)
    max_in_flight: int | None = pydantic.Field(None, ge=1)  # job-wide concurrent requests
    learn_from_headers: bool = True  # x-ratelimit-* response headers fill unset limits

    def configured(self) -> bool:
        """True when any limit is set explicitly."""
        return any(
            v is not None
            for v in (
                self.requests_per_minute,
                self.tokens_per_minute,
                self.input_tokens_per_minute,
                self.output_tokens_per_minute,
                self.max_in_flight,
            )
        )


# (HTTP status or None for a transport failure, response headers, Retry-After seconds or None)
AttemptObserver = Callable[[int | None, Mapping[str, str], float | None], None]


class BatchSettings(pydantic.BaseModel):
    """``kind: openai-batch``: requests go through the provider's Batch API (files + batches)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    max_requests: int = pydantic.Field(1000, ge=1)  # requests per submitted batch file
    collect_s: float = pydantic.Field(5.0, ge=0)  # wait this long for more requests to join
    poll_s: float = pydantic.Field(30.0, gt=0)  # batch status polling interval
    completion_window: str = "24h"


class TeacherSettings(pydantic.BaseModel):
    """How to reach the teacher. Holds the *name* of the key's environment variable, not the key.

    ``kind``: ``openai`` (any OpenAI-compatible server at ``base_url``), ``vllm`` (mathsynth
    starts ``replicas`` vLLM servers as Ray actors, each on ``tensor_parallel_size`` GPUs, with
    ``engine_args``), or ``openai-batch`` (the provider's Batch API, see ``batch``).
    ``on_length``: what to do with a reply cut by ``max_tokens`` (``finish_reason == "length"``):
    ``keep`` it, ``retry`` with ``length_retry_factor`` times the budget (up to
    ``length_max_tokens``, then reject), or ``reject`` it with reason ``length``."""

    model_config = pydantic.ConfigDict(extra="forbid")

    kind: Literal["openai", "vllm", "openai-batch"] = "openai"
    base_url: str | None = None  # None -> env OPENAI_BASE_URL (then the SDK default)
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    connect_timeout_s: float = pydantic.Field(10.0, gt=0)
    read_timeout_s: float = pydantic.Field(600.0, gt=0)
    max_attempts: int = pydantic.Field(6, ge=1)
    backoff_initial_s: float = pydantic.Field(1.0, ge=0)
    backoff_max_s: float = pydantic.Field(60.0, ge=0)
    use_aiohttp: bool = True
    price: Price | None = None  # $/1M tokens; default from orchestrator/teacher/prices.yaml
    limits: RateLimits = pydantic.Field(default_factory=RateLimits)
    on_length: Literal["keep", "retry", "reject"] = "retry"
    length_retry_factor: float = pydantic.Field(2.0, gt=1)
    length_max_tokens: int = pydantic.Field(8192, ge=1)
    # kind: vllm
    replicas: int = pydantic.Field(1, ge=1)
    tensor_parallel_size: int = pydantic.Field(1, ge=1)
    engine_args: dict[str, Any] = pydantic.Field(default_factory=dict)
    replica: ReplicaSettings = pydantic.Field(default_factory=ReplicaSettings)
    # kind: openai-batch
    batch: BatchSettings = pydantic.Field(default_factory=BatchSettings)


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    model: str
    attempts: int  # HTTP attempts this completion took (1 = no retry)


class _MalformedReply(Exception):
    """A 200 reply that is not a usable chat completion (internal; retried)."""


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: 408/409/429/5xx, timeouts, connection errors, and
    malformed replies. Classified by exception type and status code only."""
    if isinstance(exc, _MalformedReply):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in TRANSIENT_STATUSES
    # APITimeoutError is a subclass of APIConnectionError.
    return isinstance(exc, openai.APIConnectionError)


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds
    or an HTTP-date) on an HTTP error response; None when absent or unparseable."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    value = headers.get("retry-after")
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # "-0000": RFC 7231 dates are GMT
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, when.timestamp() - time.time())
    return None


class RetryAfterWait(wait_base):
    """tenacity wait: full-jitter exponential backoff, but at least the server's Retry-After."""

    def __init__(self, initial: float, maximum: float, cap: float = RETRY_AFTER_CAP_S) -> None:
        self._backoff = wait_random_exponential(multiplier=initial, max=maximum)
        self._cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = float(self._backoff(retry_state))
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        hint = retry_after_seconds(exc)
        if hint is not None:
            delay = max(delay, min(hint, self._cap))
        return delay


class _StopAfterMalformed(stop_base):
    """tenacity stop: give up after ``limit`` malformed replies within one call."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        if (
            outcome is not None
            and outcome.failed
            and isinstance(outcome.exception(), _MalformedReply)
        ):
            self.seen += 1
        return self.seen >= self.limit


def _count(value: object) -> int:
    """A token count from a reply's ``usage`` (0 when absent or not a number)."""
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0


def _describe(exc: BaseException) -> str:
    """Short, body-free description for logs: exception type and status."""
    if isinstance(exc, openai.APIStatusError):
        return f"{type(exc).__name__} HTTP {exc.status_code}"
    return type(exc).__name__


class TeacherClient:
    """Chat completions from the teacher with tenacity retries (see module docstring)."""

    def __init__(self, settings: TeacherSettings, api_key: str | None = None) -> None:
        self.settings = settings
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
        except openai.APITimeoutError:
            self._bump("timeout")
            raise
        except openai.APIConnectionError:
            self._bump("connection_error")
            raise
        except (json.JSONDecodeError, UnicodeDecodeError, openai.APIResponseValidationError) as e:
            self._bump("malformed_reply")
            raise _MalformedReply(
                f"reply body is not a chat completion ({type(e).__name__})"
            ) from e
        try:
            return self._completion(reply, attempt)
        except _MalformedReply:
            self._bump("malformed_reply")
            raise

    def _completion(self, reply: object, attempt: int) -> Completion:
        """A ``Completion`` from the reply's JSON (the fields of OpenAI's chat.completion)."""
        if not isinstance(reply, dict):
            raise _MalformedReply(f"reply is a JSON {type(reply).__name__}, not a chat completion")
        choices = reply.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _MalformedReply("reply has no choices")
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(message, dict) or not isinstance(content, (str, type(None))):
            raise _MalformedReply("first choice has no message")
        usage = reply.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        finish_reason = choices[0].get("finish_reason")
        model = reply.get("model")
        return Completion(
            text=content or "",
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
            model=model if isinstance(model, str) and model else self.settings.model,
            attempts=attempt,
        )

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

    def _scrub(self, text: str) -> str:
        if self._key_source != "none" and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "***")
        return text[:_DETAIL_CHARS]

    def _where(self) -> str:
        return f"teacher {self.base_url or '(SDK default URL)'} model {self.settings.model!r}"

    def _final_error(self, exc: BaseException, attempts: int) -> TeacherError:
        status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
        if status in _FATAL_KINDS:
            return self._fatal_error(status, attempts)
        if isinstance(exc, _MalformedReply):
            return TeacherError(
                f"{self._where()}: malformed reply after {attempts} attempt(s): {exc}",
                "malformed_reply",
                None,
                attempts,
            )
        detail = self._scrub(exc.message if isinstance(exc, openai.APIError) else str(exc))
        if is_transient(exc):
            return TeacherError(
                f"{self._where()}: gave up after {attempts} attempt(s); last error "
                f"{_describe(exc)}: {detail}",
                "retries_exhausted",
                status,
                attempts,
            )
        kind = _STATUS_KINDS.get(status, "client_error") if status is not None else "client_error"
        return TeacherError(
            f"{self._where()}: request rejected ({_describe(exc)}): {detail}",
            kind,
            status,
            attempts,
        )

    def _fatal_error(self, status: int, attempts: int) -> TeacherFatalError:
        env = self.settings.api_key_env
        if self._key_source == "argument":
            source = "the API key passed to TeacherClient"
        elif self._key_source == "env":
            source = f"the API key from environment variable {env}"
        else:
            source = f"no API key (environment variable {env} is not set)"
        if status == 401:
            problem = f"rejected {source} as missing or invalid (HTTP 401)"
        else:
            problem = f"refused access with {source} (HTTP 403)"
        return TeacherFatalError(
            f"{self._where()} {problem}. Set environment variable {env} to a valid key for this "
            "server (or api_key_env to the variable that holds it) and run again.",
            _FATAL_KINDS[status],
            status,
            attempts,
        )
