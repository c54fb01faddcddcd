"""The teacher's retry policy: which failures are retried, and how long to wait between tries.

* ``is_transient``: 408/409/429 and 5xx statuses, timeouts, dropped or refused connections, and
  malformed 200 replies (``_MalformedReply``) are worth retrying; every other error is not (a
  base URL the HTTP client cannot use at all, ``transport.py``'s ``invalid_url``, included).
  Classified by exception type and HTTP status code only, never by message text.
* ``retry_after_seconds``: the server's ``retry-after-ms`` / ``Retry-After`` (seconds or
  HTTP-date) header on an HTTP error.
* ``RetryAfterWait`` (tenacity wait): exponential backoff with full jitter, but never shorter than
  the server's Retry-After, itself capped at ``RETRY_AFTER_CAP_S``.
* ``_StopAfterMalformed`` (tenacity stop): at most ``MALFORMED_MAX_ATTEMPTS`` malformed replies
  per call.

What it does NOT do: send requests, count stats or log (``client.py``), or build the error a
caller finally sees (``failures.py``).
"""

from __future__ import annotations

import email.utils
import math
import time
from datetime import timezone

import openai
from tenacity import RetryCallState
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_random_exponential

from orchestrator.teacher.replies import _MalformedReply
from orchestrator.teacher.transport import transport_cause

__all__ = [
    "MALFORMED_MAX_ATTEMPTS",
    "RETRY_AFTER_CAP_S",
    "TRANSIENT_STATUSES",
    "RetryAfterWait",
    "is_transient",
    "retry_after_seconds",
]

MALFORMED_MAX_ATTEMPTS = 3  # malformed 200 replies tolerated per call before giving up
RETRY_AFTER_CAP_S = 600.0  # a server-requested wait longer than this is clamped to it
TRANSIENT_STATUSES = frozenset({408, 409, 429})  # plus every status >= 500


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: 408/409/429/5xx, timeouts, connection errors, and
    malformed replies. Classified by exception type and status code only."""
    if isinstance(exc, _MalformedReply):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in TRANSIENT_STATUSES
    # APITimeoutError is a subclass of APIConnectionError. A URL the client cannot use fails
    # the same way on every attempt.
    return isinstance(exc, openai.APIConnectionError) and transport_cause(exc) != "invalid_url"


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
