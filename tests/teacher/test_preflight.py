"""The teacher check before a run (``orchestrator.teacher.preflight``) and the transport cause
of failures (``orchestrator.teacher.transport``), over real HTTP to the scripted server on
127.0.0.1 or to a port nothing listens on."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from orchestrator.teacher.errors import TeacherFatalError
from orchestrator.teacher.preflight import TeacherUnavailable, check_teacher
from orchestrator.teacher.settings import TeacherSettings
from tests.support.scripted_server import Fault, ScriptedServer
from tests.teacher.test_client import chat_error

HTML = "<!doctype html><html><body>Welcome to the web UI</body></html>"


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(base_url: str, model: str = "m", **kw: Any) -> TeacherSettings:
    return TeacherSettings(base_url=base_url, model=model, **kw)


def always(fault: Fault):
    return lambda body, index: fault


def test_a_listed_model_needs_no_chat_request() -> None:
    with ScriptedServer(known_models=["m", "other"]) as srv:
        assert check_teacher(settings(srv.base_url)) == []
        assert srv.request_count == 0  # GET /models only


def test_an_unlisted_model_is_checked_with_one_token() -> None:
    with ScriptedServer() as srv:  # lists "scripted-model" but answers any model
        assert check_teacher(settings(srv.base_url)) == []
        assert srv.request_count == 1 and srv.requests[0]["max_tokens"] == 1


def test_unknown_model_is_named_with_what_the_server_serves() -> None:
    with (
        ScriptedServer(known_models=["Qwen/Qwen2.5-7B-Instruct"]) as srv,
        pytest.raises(TeacherUnavailable) as info,
    ):
        check_teacher(settings(srv.base_url, model="qwen-7b"))
    message = str(info.value)
    assert "does not know model 'qwen-7b'" in message and "HTTP 404" in message
    assert "it serves: Qwen/Qwen2.5-7B-Instruct" in message and srv.base_url in message


def test_a_rejected_minimal_request_quotes_the_server() -> None:
    fault = Fault(status=400, message="unsupported parameter: temperature")
    with (
        ScriptedServer(reply=always(fault)) as srv,
        pytest.raises(TeacherUnavailable, match="HTTP 400: unsupported parameter"),
    ):
        check_teacher(settings(srv.base_url))


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        (Fault(kind="malformed", body=HTML, content_type="text/html"), "an HTML page"),
        (Fault(kind="malformed", body=""), "an empty body"),
        (Fault(kind="malformed", body="OK", content_type="text/plain"), "not JSON"),
        (Fault(kind="malformed", body='{"ok": true}'), "JSON that is not a chat completion"),
    ],
    ids=["html", "empty", "text", "wrong-json"],
)
def test_a_200_that_is_not_a_completion_is_named(fault: Fault, named: str) -> None:
    with ScriptedServer(reply=always(fault)) as srv, pytest.raises(TeacherUnavailable, match=named):
        check_teacher(settings(srv.base_url))


def test_an_html_models_page_stops_before_any_chat_request() -> None:
    fault = Fault(kind="malformed", body=HTML, content_type="text/html")
    with ScriptedServer(models_fault=fault) as srv:
        with pytest.raises(TeacherUnavailable, match="GET /models answered 200 with an HTML"):
            check_teacher(settings(srv.base_url))
        assert srv.request_count == 0


def test_a_refused_connection_is_reported_as_refused() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(TeacherUnavailable) as info:
        check_teacher(settings(url))
    assert "connection refused" in str(info.value) and url in str(info.value)
    assert "timeout" not in str(info.value)


def test_rejected_key_stops_with_the_variable_name() -> None:
    gated = ScriptedServer(reply=always(Fault(status=401)), models_fault=Fault(status=401))
    with gated as srv, pytest.raises(TeacherFatalError, match="MY_KEY"):
        check_teacher(settings(srv.base_url, api_key_env="MY_KEY"))


def test_transient_answers_only_warn() -> None:
    with ScriptedServer(reply=always(Fault(status=503))) as srv:
        warnings = check_teacher(settings(srv.base_url))
    assert len(warnings) == 1 and "HTTP 503" in warnings[0]


def test_batch_teachers_are_checked_without_a_chat_request() -> None:
    with ScriptedServer() as srv:
        warnings = check_teacher(settings(srv.base_url, kind="openai-batch"))
        assert srv.request_count == 0
    assert "not in the server's /models listing" in warnings[0]
    refused = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(TeacherUnavailable, match="connection refused"):
        check_teacher(settings(refused, kind="openai-batch"))


def test_vllm_replicas_are_not_checked_here() -> None:
    # kind vllm: mathsynth starts the servers and waits for their health itself
    assert check_teacher(TeacherSettings(kind="vllm", model="m")) == []


@pytest.mark.parametrize("use_aiohttp", [True, False], ids=["aiohttp", "httpx"])
def test_client_names_a_refused_connection(use_aiohttp: bool) -> None:
    """The SDK's aiohttp transport raises a refused connection as APITimeoutError; the client
    reports the real cause (from the exception chain, by type) and counts no timeout."""
    url = f"http://127.0.0.1:{closed_port()}/v1"
    s = settings(url, max_attempts=2, backoff_initial_s=0.01, use_aiohttp=use_aiohttp)
    error, stats = asyncio.run(chat_error(s))
    assert (error.kind, error.cause, error.attempts) == (
        "retries_exhausted",
        "connection_refused",
        2,
    )
    assert "connection refused" in str(error) and "Timeout" not in str(error)
    assert stats.get("timeout", 0) == 0 and stats["connection_error"] == 2


def test_client_names_html_bodies() -> None:
    fault = Fault(kind="malformed", body=HTML, content_type="text/html")
    with ScriptedServer(reply=always(fault)) as srv:
        error, _ = asyncio.run(chat_error(settings(srv.base_url, backoff_initial_s=0.01)))
    assert (error.kind, error.cause) == ("malformed_reply", "html_body")
    assert "an HTML page" in str(error)


@pytest.mark.parametrize("url", ["notaurl", "ftp://host/v1", "http://", "http://h:port/v1"])
def test_a_base_url_that_is_not_a_url_is_refused_at_load(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        settings(url)
