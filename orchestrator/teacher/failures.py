"""The error a teacher call finally raises: turns its last failure into a ``TeacherError``.

``final_error`` classifies by exception type and HTTP status code only, never by message text:
401/403 become ``TeacherFatalError`` (``fatal_error``: the run must stop; the message names the
environment variable that holds the key and where the key came from), malformed replies kind
``malformed_reply`` (with the body's ``cause``), transient failures that used up the attempts
``retries_exhausted`` (a request that got no HTTP answer names its transport ``cause``, e.g.
``connection_refused``, found by ``transport.py`` from the exception chain), and other
4xx ``bad_request`` / ``not_found`` / ``unprocessable`` / ``client_error``. Messages are short and
body-free apart from the SDK's error message, scrubbed of the key and cut to ``_DETAIL_CHARS``.

What it does NOT do: decide what is retried (``retries.py``), count failures or log
(``client.py``), or define the exception types (``errors.py``). It never puts the API key in a
message; the caller drops the SDK error as ``__cause__`` of a fatal error for the same reason.
"""

from __future__ import annotations

from typing import Literal

import openai

from orchestrator.teacher.errors import TeacherError, TeacherFatalError
from orchestrator.teacher.replies import _MalformedReply
from orchestrator.teacher.retries import is_transient
from orchestrator.teacher.transport import describe_cause, transport_cause

__all__ = ["KeySource", "fatal_error", "final_error", "scrub"]

# Where the client's API key came from: passed to TeacherClient, read from api_key_env, or none.
KeySource = Literal["argument", "env", "none"]

_STATUS_KINDS = {400: "bad_request", 404: "not_found", 422: "unprocessable"}
_FATAL_KINDS = {401: "unauthorized", 403: "forbidden"}
_DETAIL_CHARS = 500


def _describe(exc: BaseException) -> str:
    """Short, body-free description for logs: exception type and status."""
    if isinstance(exc, openai.APIStatusError):
        return f"{type(exc).__name__} HTTP {exc.status_code}"
    return type(exc).__name__


def scrub(text: str, api_key: str, key_source: KeySource) -> str:
    """``text`` without the API key (when one is configured), cut to ``_DETAIL_CHARS``."""
    if key_source != "none" and len(api_key) >= 4:
        text = text.replace(api_key, "***")
    return text[:_DETAIL_CHARS]


def final_error(
    exc: BaseException,
    attempts: int,
    *,
    where: str,
    api_key_env: str,
    api_key: str,
    key_source: KeySource,
) -> TeacherError:
    """The ``TeacherError`` for a call whose last attempt failed with ``exc``; ``where`` names
    the teacher (URL and model) at the start of the message."""
    status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
    if status in _FATAL_KINDS:
        return fatal_error(
            status, attempts, where=where, api_key_env=api_key_env, key_source=key_source
        )
    if isinstance(exc, _MalformedReply):
        return TeacherError(
            f"{where}: malformed reply after {attempts} attempt(s): {exc}",
            "malformed_reply",
            None,
            attempts,
            exc.cause,
        )
    raw = exc.message if isinstance(exc, openai.APIError) else str(exc)
    detail = scrub(raw, api_key, key_source)
    cause = transport_cause(exc) if status is None else None
    if cause is not None:  # no HTTP answer at all: say why (a refusal is not a timeout)
        return TeacherError(
            f"{where}: gave up after {attempts} attempt(s): {describe_cause(cause)}",
            "retries_exhausted",
            None,
            attempts,
            cause,
        )
    if is_transient(exc):
        return TeacherError(
            f"{where}: gave up after {attempts} attempt(s); last error {_describe(exc)}: {detail}",
            "retries_exhausted",
            status,
            attempts,
        )
    kind = _STATUS_KINDS.get(status, "client_error") if status is not None else "client_error"
    return TeacherError(
        f"{where}: request rejected ({_describe(exc)}): {detail}",
        kind,
        status,
        attempts,
    )


def fatal_error(
    status: int, attempts: int, *, where: str, api_key_env: str, key_source: KeySource
) -> TeacherFatalError:
    """The ``TeacherFatalError`` for HTTP 401/403: says which environment variable to fix."""
    env = api_key_env
    if key_source == "argument":
        source = "the API key passed to TeacherClient"
    elif key_source == "env":
        source = f"the API key from environment variable {env}"
    else:
        source = f"no API key (environment variable {env} is not set)"
    if status == 401:
        problem = f"rejected {source} as missing or invalid (HTTP 401)"
    else:
        problem = f"refused access with {source} (HTTP 403)"
    return TeacherFatalError(
        f"{where} {problem}. Set environment variable {env} to a valid key for this "
        "server (or api_key_env to the variable that holds it) and run again.",
        _FATAL_KINDS[status],
        status,
        attempts,
    )
