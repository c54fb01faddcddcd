"""The teacher check a run makes before it starts any worker: is the teacher there, does it
speak the OpenAI API, does it know the model?

``check_teacher(settings, api_key)`` sends at most two cheap requests:

1. ``GET /models``. No HTTP answer at all stops the run with the transport cause (a refused
   connection is reported as refused, an unresolvable host as such, ...); 401/403 stop it with
   the message of ``failures.fatal_error`` (which variable holds the key); a 200 that is an HTML
   page, empty, or not JSON stops it and says which. A listing that names the model ends the
   check: nothing else is sent.
2. Otherwise (no ``/models`` on this server, or the model is not listed) one chat completion with
   ``max_tokens=1``. 404 stops the run naming the model (and the models the server lists);
   400/422 and other 4xx stop it quoting the server; a 200 that is not a chat completion stops
   it naming the body (HTML, empty, not JSON, wrong JSON).

429, 5xx and timeouts are transient: they give a warning (returned) and the run starts; the
engine's retries and its failure stop (``orchestrator.engine.failure_stop``) take over.
``kind: openai-batch`` gets step 1 only (its requests go through the Batch API; a model missing
from the listing is a warning); ``kind: vllm`` is not checked here (the replicas mathsynth starts
wait for their own health). Classification is by exception type and status code only.

``CheckInBackground`` runs the same check on a thread, so that it overlaps Ray's start; its
``result`` waits and re-raises.

What it does NOT do: retry, count requests in the run's counters, or check rate limits or
quotas (one tiny request cannot tell).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import openai

from orchestrator.teacher.client import PLACEHOLDER_API_KEY
from orchestrator.teacher.failures import KeySource, fatal_error, scrub
from orchestrator.teacher.replies import BODY_CAUSES, _MalformedReply, body_cause, parse_completion
from orchestrator.teacher.retries import is_transient
from orchestrator.teacher.settings import TeacherSettings
from orchestrator.teacher.transport import describe_cause, transport_cause

try:  # the HTTP library under the openai SDK: httpx2 since openai 3, httpx before
    from httpx2 import Response as _HttpResponse
except ImportError:  # pragma: no cover
    from httpx import Response as _HttpResponse

__all__ = ["CheckInBackground", "TeacherUnavailable", "check_teacher"]

CHECK_READ_TIMEOUT_S = 60.0  # one token: a server that cannot answer this in a minute is busy


class TeacherUnavailable(RuntimeError):
    """The teacher cannot serve this run (unreachable, not the OpenAI API, unknown model, or it
    rejects a minimal request); the message names URL, model and cause."""


class _Check:
    def __init__(self, settings: TeacherSettings, api_key: str | None) -> None:
        self.settings = settings
        self.key_source: KeySource = "argument" if api_key else "none"
        if not api_key:
            api_key = os.environ.get(settings.api_key_env) or None
            self.key_source = "env" if api_key else "none"
        self.api_key = api_key or PLACEHOLDER_API_KEY
        base_url = settings.base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.client = openai.OpenAI(
            base_url=base_url, api_key=self.api_key, max_retries=0,
            timeout=openai.Timeout(
                min(settings.read_timeout_s, CHECK_READ_TIMEOUT_S),
                connect=settings.connect_timeout_s,
            ),
        )  # fmt: skip
        url = str(self.client.base_url).rstrip("/")
        self.where = f"teacher {url} model {settings.model!r}"
        self.warnings: list[str] = []
        self.rejected: tuple[int, str] | None = None  # the last non-transient 4xx: status, detail

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """JSON of a 200 answer; None after a transient failure (a warning is kept)."""
        call = f"{method} {path}"
        try:
            if method == "GET":
                raw = self.client.get(path, cast_to=_HttpResponse)
            else:
                raw = self.client.post(path, body=body, cast_to=_HttpResponse)
        except openai.APIStatusError as exc:
            return self._status(call, exc)
        except openai.APIConnectionError as exc:
            cause = transport_cause(exc)
            if cause == "timeout":
                self.warnings.append(f"{self.where}: {call} timed out; starting anyway")
                return None
            raise TeacherUnavailable(
                f"{self.where}: cannot reach the teacher: {describe_cause(cause)}"
            ) from None
        try:
            return json.loads(raw.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            cause = body_cause(raw.content, raw.headers.get("content-type"))
            raise TeacherUnavailable(
                f"{self.where}: {call} answered 200 with {BODY_CAUSES[cause]}"
            ) from None

    def _status(self, call: str, exc: openai.APIStatusError) -> None:
        status = exc.status_code
        if status in (401, 403):
            raise fatal_error(
                status, 1, where=self.where, api_key_env=self.settings.api_key_env,
                key_source=self.key_source,
            )  # fmt: skip
        if is_transient(exc):
            self.warnings.append(f"{self.where}: {call} answered HTTP {status}; starting anyway")
            return None
        error = exc.body if isinstance(exc.body, dict) else {}
        detail = error.get("message") if isinstance(error.get("message"), str) else exc.message
        self.rejected = (status, scrub(str(detail), self.api_key, self.key_source))
        return None

    def models(self) -> list[str] | None:
        """Model ids the server lists, or None when it has no usable ``/models``."""
        listing = self.request("GET", "/models")
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            return None
        return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]

    def chat(self, served: list[str] | None) -> None:
        self.rejected = None  # a 404 of GET /models means only "no listing"
        body = {
            "model": self.settings.model,
            "messages": [{"role": "user", "content": "Reply with one word."}],
            "max_tokens": 1,
            "temperature": 0.0,
        }
        reply = self.request("POST", "/chat/completions", body)
        if self.rejected is not None:
            status, detail = self.rejected
            if status == 404:
                known = f"; it serves: {', '.join(served[:20])}" if served else ""
                raise TeacherUnavailable(
                    f"{self.where}: the server does not know model {self.settings.model!r} "
                    f"(HTTP 404: {detail}){known}"
                )
            raise TeacherUnavailable(
                f"{self.where}: the server rejected a minimal chat request (max_tokens=1) with "
                f"HTTP {status}: {detail}"
            )
        if reply is not None:
            try:
                parse_completion(reply, 1, self.settings.model)
            except _MalformedReply:
                raise TeacherUnavailable(
                    f"{self.where}: POST /chat/completions answered 200 with "
                    f"{BODY_CAUSES['not_completion']}"
                ) from None


def check_teacher(settings: TeacherSettings, api_key: str | None = None) -> list[str]:
    """Check the teacher (see the module docstring); returns warnings, raises
    ``TeacherUnavailable`` or ``TeacherFatalError`` when the run cannot work."""
    if settings.kind == "vllm":
        return []
    check = _Check(settings, api_key)
    try:
        served = check.models()
        listed = served is not None and settings.model in served
        if settings.kind == "openai-batch":
            if served is not None and not listed:
                check.warnings.append(
                    f"{check.where}: the model is not in the server's /models listing"
                )
        elif not listed:
            check.chat(served)
    finally:
        check.client.close()
    return check.warnings


class CheckInBackground:
    """``check_teacher`` on a daemon thread (a run that stops for another reason meanwhile
    does not wait for it)."""

    def __init__(self, settings: TeacherSettings, api_key: str | None = None) -> None:
        self._warnings: list[str] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._check, args=(settings, api_key), name="mathsynth-teacher-check",
            daemon=True,
        )  # fmt: skip
        self._thread.start()

    def _check(self, settings: TeacherSettings, api_key: str | None) -> None:
        try:
            self._warnings = check_teacher(settings, api_key)
        except BaseException as err:  # handed to the caller in result()
            self._error = err

    def result(self) -> list[str]:
        """Wait for the check: its warnings, or what it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._warnings
