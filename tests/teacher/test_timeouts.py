"""``teacher.connect_timeout_s`` and ``read_timeout_s`` are separate and honoured, over real
sockets on 127.0.0.1 with both transports.

A connect that never completes: a listening socket whose accept queue is full (``listen(0)``,
never accepted, already holding connections) drops further SYNs, so the client's connect hangs
until its connect timeout. A slow reply on an established connection is governed by the read
timeout only."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import openai
import pytest

from orchestrator.teacher.client import TeacherClient, TeacherError
from orchestrator.teacher.settings import TeacherSettings
from tests.support.scripted_server import ScriptedServer

TRANSPORTS = pytest.mark.parametrize("use_aiohttp", [True, False], ids=["aiohttp", "httpx"])


@contextlib.contextmanager
def unconnectable_port() -> Iterator[int]:
    """A port on 127.0.0.1 where a new TCP connect hangs (full accept queue)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    try:
        yield port
    finally:
        for sock in [*fillers, server]:
            sock.close()


async def chat_once(settings: TeacherSettings) -> tuple[object, dict[str, int], float]:
    client = TeacherClient(settings, api_key="k")
    start = time.monotonic()
    try:
        result: object = await client.chat([{"role": "user", "content": "hi"}], max_tokens=5)
    except TeacherError as err:
        result = err
    finally:
        await client.close()
    return result, client.stats, time.monotonic() - start


@TRANSPORTS
def test_connect_timeout_is_honoured(use_aiohttp: bool) -> None:
    with unconnectable_port() as port:
        settings = TeacherSettings(
            base_url=f"http://127.0.0.1:{port}/v1", model="m", connect_timeout_s=0.3,
            read_timeout_s=60, max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.02,
            use_aiohttp=use_aiohttp,
        )  # fmt: skip
        error, stats, elapsed = asyncio.run(chat_once(settings))
    assert isinstance(error, TeacherError) and error.kind == "retries_exhausted"
    assert isinstance(error.__cause__, openai.APITimeoutError)
    assert stats["timeout"] == 2 and stats["requests"] == 2
    assert 0.6 <= elapsed < 10  # two connect timeouts of 0.3 s, nowhere near the read timeout


@TRANSPORTS
def test_a_slow_reply_is_bounded_by_the_read_timeout_only(use_aiohttp: bool) -> None:
    with ScriptedServer(latency=0.8) as srv:
        common = {"base_url": srv.base_url, "model": "m", "connect_timeout_s": 0.2,
                  "max_attempts": 1, "use_aiohttp": use_aiohttp}  # fmt: skip
        ok, _, _ = asyncio.run(chat_once(TeacherSettings(**common, read_timeout_s=10)))
        late, stats, _ = asyncio.run(chat_once(TeacherSettings(**common, read_timeout_s=0.3)))
    assert not isinstance(ok, TeacherError)  # 0.8 s > connect timeout: not a connect problem
    assert isinstance(late, TeacherError) and stats["timeout"] == 1
