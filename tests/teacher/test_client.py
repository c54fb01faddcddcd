"""TeacherClient against the scripted OpenAI-compatible server, over real HTTP on 127.0.0.1.

Covers success, each transient fault followed by success (retried, Retry-After honoured),
non-retried statuses (exactly one request), fatal auth errors (message names the env var, never
the key), exhaustion after exactly ``max_attempts`` requests, the SDK's own retries being off,
and both transports (aiohttp and httpx). Backoffs are tiny so the file runs in seconds.
"""

from __future__ import annotations

import asyncio
import email.utils
import pickle
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx2
import openai
import pydantic
import pytest

from orchestrator.teacher import (
    Completion,
    TeacherClient,
    TeacherError,
    TeacherFatalError,
    TeacherSettings,
)
from orchestrator.teacher.retries import MALFORMED_MAX_ATTEMPTS, retry_after_seconds
from tests.support.scripted_server import Fault, ScriptedServer

T = TypeVar("T")
SECRET = "sk-test-0123456789abcdefSECRET"
KEY_ENV = "MATHSYNTH_TEST_TEACHER_KEY"
MESSAGES = [
    {"role": "system", "content": "You solve problems."},
    {"role": "user", "content": "what is two plus two"},
]
TRANSPORTS = pytest.mark.parametrize("use_aiohttp", [True, False], ids=["aiohttp", "httpx"])


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def settings(srv: ScriptedServer, use_aiohttp: bool = True, **overrides: Any) -> TeacherSettings:
    values: dict[str, Any] = {
        "base_url": srv.base_url,
        "model": "teacher-m",
        "api_key_env": KEY_ENV,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 5.0,
        "max_attempts": 4,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "use_aiohttp": use_aiohttp,
    }
    values.update(overrides)
    return TeacherSettings(**values)


async def chat_once(
    s: TeacherSettings, api_key: str | None = None, **kwargs: Any
) -> tuple[Completion, dict[str, int]]:
    client = TeacherClient(s, api_key=api_key)
    try:
        result = await client.chat(MESSAGES, max_tokens=kwargs.pop("max_tokens", 64), **kwargs)
        return result, client.stats
    finally:
        await client.close()


async def chat_error(
    s: TeacherSettings, api_key: str | None = None
) -> tuple[TeacherError, dict[str, int]]:
    client = TeacherClient(s, api_key=api_key)
    try:
        with pytest.raises(TeacherError) as info:
            await client.chat(MESSAGES, max_tokens=16)
        return info.value, client.stats
    finally:
        await client.close()


def three_words(request_json: dict[str, Any], index: int) -> str:
    return "alpha beta gamma"


def always_500(request_json: dict[str, Any], index: int) -> Fault:
    return Fault(status=500)


def always_malformed(request_json: dict[str, Any], index: int) -> Fault:
    return Fault(kind="malformed")


@pytest.fixture
def srv() -> Iterator[ScriptedServer]:
    with ScriptedServer(reply=three_words) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


# --------------------------------------------------------------------------- success


@TRANSPORTS
def test_success_text_usage_finish_reason_and_stats(srv: ScriptedServer, use_aiohttp: bool) -> None:
    result, stats = run(
        chat_once(settings(srv, use_aiohttp), temperature=0.7, top_p=0.9, seed=7, stop=["###"])
    )
    assert result == Completion(
        text="alpha beta gamma",
        finish_reason="stop",
        prompt_tokens=3 + 5,  # whitespace words of both messages (server's approximation)
        completion_tokens=3,
        model="teacher-m",
        attempts=1,
    )
    assert stats["requests"] == 1
    assert stats["completions"] == 1
    assert stats["retries"] == 0
    assert stats["failures"] == 0
    assert stats["prompt_tokens"] == 8 and stats["completion_tokens"] == 3
    (body,) = srv.requests
    assert body["model"] == "teacher-m"
    assert body["messages"] == MESSAGES
    assert body["max_tokens"] == 64
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9
    assert body["seed"] == 7 and body["stop"] == ["###"]
    assert body.get("stream") in (None, False)


def test_finish_reason_length(srv: ScriptedServer) -> None:
    result, _ = run(chat_once(settings(srv), max_tokens=2))
    assert result.text == "alpha beta"
    assert result.finish_reason == "length"
    assert result.completion_tokens == 2


def test_optional_fields_not_sent_when_unset(srv: ScriptedServer) -> None:
    run(chat_once(settings(srv)))
    (body,) = srv.requests
    assert "stop" not in body and "seed" not in body


def test_base_url_from_env_and_no_key_needed(
    srv: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    result, _ = run(chat_once(settings(srv, base_url=None)))  # no key anywhere: "EMPTY" is sent
    assert result.text == "alpha beta gamma"
    assert srv.request_count == 1


def test_many_concurrent_requests() -> None:
    with ScriptedServer(reply=three_words, latency=0.2) as server:

        async def go() -> list[Completion]:
            client = TeacherClient(settings(server))
            try:
                return await asyncio.gather(
                    *(client.chat(MESSAGES, max_tokens=8) for _ in range(300))
                )
            finally:
                await client.close()

        start = time.monotonic()
        results = run(go())
        elapsed = time.monotonic() - start
    assert len(results) == 300 and all(r.text == "alpha beta gamma" for r in results)
    assert server.request_count == 300
    assert elapsed < 5.0, f"300 concurrent requests at 0.2 s latency took {elapsed:.1f} s"


# --------------------------------------------------------------------------- transient faults


@TRANSPORTS
@pytest.mark.parametrize(
    ("fault", "stat"),
    [
        (Fault(status=500), "status_500"),
        (Fault(status=503), "status_503"),
        (Fault(status=429), "status_429"),
        (Fault(kind="drop"), None),  # reported as a timeout or a connection error by transport
        (Fault(kind="timeout", seconds=10), "timeout"),
        (Fault(kind="malformed"), "malformed_reply"),
        (Fault(kind="malformed", body='{"object": "chat.completion", "choices": []}'), None),
        (Fault(kind="malformed", body="<html>busy</html>", content_type="text/html"), None),
    ],
    ids=["500", "503", "429", "drop", "timeout", "bad-json", "no-choices", "html"],
)
def test_transient_fault_then_success(
    srv: ScriptedServer, use_aiohttp: bool, fault: Fault, stat: str | None
) -> None:
    srv.inject([fault])
    result, stats = run(chat_once(settings(srv, use_aiohttp, read_timeout_s=0.3)))
    assert result.text == "alpha beta gamma"
    assert result.attempts == 2
    assert srv.request_count == 2
    assert stats["requests"] == 2 and stats["retries"] == 1 and stats["completions"] == 1
    if stat is not None:
        assert stats[stat] == 1
    if fault.kind == "drop":
        assert stats.get("timeout", 0) + stats.get("connection_error", 0) == 1
    if fault.kind == "malformed":
        assert stats["malformed_reply"] == 1


@pytest.mark.parametrize(
    ("fault", "at_least"),
    [
        (Fault(status=429, retry_after=0.6), 0.6),
        (Fault(status=503, retry_after=0.5), 0.5),
        (Fault(status=429, retry_after_ms=400), 0.4),
    ],
    ids=["429-retry-after", "503-retry-after", "429-retry-after-ms"],
)
def test_retry_after_is_honoured(srv: ScriptedServer, fault: Fault, at_least: float) -> None:
    srv.inject([fault])
    start = time.monotonic()
    result, stats = run(chat_once(settings(srv)))  # backoff alone would wait <= 0.05 s
    elapsed = time.monotonic() - start
    assert result.attempts == 2 and srv.request_count == 2 and stats["retries"] == 1
    assert elapsed >= at_least, f"retried after {elapsed:.3f} s, server asked for {at_least} s"


def test_retry_after_header_parsing() -> None:
    def err(**headers: str) -> openai.RateLimitError:
        request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
        response = httpx2.Response(429, headers=headers, request=request)
        return openai.RateLimitError("rate limited", response=response, body=None)

    assert retry_after_seconds(err()) is None
    assert retry_after_seconds(err(**{"retry-after": "2"})) == 2.0
    assert retry_after_seconds(err(**{"retry-after": "0.25"})) == 0.25
    assert retry_after_seconds(err(**{"retry-after-ms": "150", "retry-after": "9"})) == 0.15
    assert retry_after_seconds(err(**{"retry-after": "soon"})) is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after_seconds(err(**{"retry-after": future})) or 0) <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert retry_after_seconds(err(**{"retry-after": past})) == 0.0
    assert retry_after_seconds(ValueError("not an HTTP error")) is None


def test_several_faults_in_a_row_then_success(srv: ScriptedServer) -> None:
    srv.inject([Fault(status=500), Fault(kind="drop"), Fault(status=429, retry_after=0.05)])
    result, stats = run(chat_once(settings(srv)))
    assert result.attempts == 4 and srv.request_count == 4 and stats["retries"] == 3


# --------------------------------------------------------------------------- not retried


@TRANSPORTS
@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "bad_request"), (404, "not_found"), (422, "unprocessable"), (413, "client_error")],
)
def test_client_errors_fail_after_one_request(
    srv: ScriptedServer, use_aiohttp: bool, status: int, kind: str
) -> None:
    srv.inject([Fault(status=status)])
    error, stats = run(chat_error(settings(srv, use_aiohttp)))
    assert type(error) is TeacherError
    assert (error.kind, error.status, error.attempts) == (kind, status, 1)
    assert srv.request_count == 1
    assert stats["requests"] == 1 and stats["retries"] == 0 and stats["failures"] == 1
    assert stats[f"status_{status}"] == 1
    assert isinstance(error.__cause__, openai.APIStatusError)


@TRANSPORTS
@pytest.mark.parametrize(("status", "kind"), [(401, "unauthorized"), (403, "forbidden")])
def test_auth_errors_are_fatal_and_never_show_the_key(
    srv: ScriptedServer, use_aiohttp: bool, status: int, kind: str
) -> None:
    srv.inject([Fault(status=status)])
    error, _ = run(chat_error(settings(srv, use_aiohttp), api_key=SECRET))
    assert isinstance(error, TeacherFatalError)
    assert (error.kind, error.status) == (kind, status)
    assert srv.request_count == 1
    assert KEY_ENV in str(error)
    for text in (str(error), repr(error), repr(pickle.loads(pickle.dumps(error)))):
        assert SECRET not in text
    assert error.__cause__ is None  # the SDK error (whose body may echo the key) is not chained


def test_auth_error_with_key_from_env(srv: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    srv.inject([Fault(status=401)])
    client = TeacherClient(settings(srv))
    assert SECRET not in repr(client)

    async def go() -> TeacherFatalError:
        try:
            with pytest.raises(TeacherFatalError) as info:
                await client.chat(MESSAGES, max_tokens=4)
            return info.value
        finally:
            await client.close()

    error = run(go())
    assert KEY_ENV in str(error) and SECRET not in str(error)
    assert srv.request_count == 1


def test_auth_error_without_any_key_says_variable_is_unset(srv: ScriptedServer) -> None:
    srv.inject([Fault(status=401)])
    error, _ = run(chat_error(settings(srv)))
    assert isinstance(error, TeacherFatalError)
    assert f"environment variable {KEY_ENV} is not set" in str(error)


# --------------------------------------------------------------------------- giving up


@TRANSPORTS
def test_persistent_500_exhausts_after_exactly_max_attempts(use_aiohttp: bool) -> None:
    with ScriptedServer(reply=always_500) as server:
        error, stats = run(chat_error(settings(server, use_aiohttp, max_attempts=5)))
        assert server.request_count == 5
    assert (error.kind, error.status, error.attempts) == ("retries_exhausted", 500, 5)
    assert isinstance(error.__cause__, openai.InternalServerError)
    assert stats["requests"] == 5 and stats["retries"] == 4 and stats["status_500"] == 5
    assert stats["failures"] == 1 and stats["completions"] == 0


def test_persistent_timeouts_exhaust(srv: ScriptedServer) -> None:
    srv.inject([Fault(kind="timeout", seconds=10)] * 2)
    error, stats = run(chat_error(settings(srv, max_attempts=2, read_timeout_s=0.2)))
    assert (error.kind, error.status) == ("retries_exhausted", None)
    assert isinstance(error.__cause__, openai.APITimeoutError)
    assert srv.request_count == 2 and stats["timeout"] == 2


def test_persistent_malformed_gives_up_early() -> None:
    with ScriptedServer(reply=always_malformed) as server:
        error, stats = run(chat_error(settings(server, max_attempts=6)))
        assert server.request_count == MALFORMED_MAX_ATTEMPTS
    assert error.kind == "malformed_reply"
    assert stats["malformed_reply"] == MALFORMED_MAX_ATTEMPTS


@TRANSPORTS
@pytest.mark.parametrize("fault", [Fault(status=500), Fault(status=429)], ids=["500", "429"])
def test_sdk_retries_are_off(srv: ScriptedServer, use_aiohttp: bool, fault: Fault) -> None:
    srv.inject([fault])
    error, stats = run(chat_error(settings(srv, use_aiohttp, max_attempts=1)))
    assert srv.request_count == 1
    assert error.kind == "retries_exhausted" and error.attempts == 1
    assert stats["requests"] == 1 and stats["retries"] == 0


# --------------------------------------------------------------------------- settings / errors


def test_settings_forbid_unknown_fields() -> None:
    with pytest.raises(pydantic.ValidationError):
        TeacherSettings(model="m", api_key="nope")  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        TeacherSettings(model="m", max_attempts=0)


def test_errors_pickle_with_their_fields() -> None:
    for error in (
        TeacherError("boom", "retries_exhausted", 503, 6),
        TeacherFatalError("set X", "unauthorized", 401, 1),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (copy.kind, copy.status, copy.attempts, str(copy)) == (
            error.kind,
            error.status,
            error.attempts,
            str(error),
        )
