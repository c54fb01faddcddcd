"""The scripted server itself, over raw HTTP (aiohttp client, no OpenAI SDK): endpoints, reply
functions by callable and dotted path, the fault queue, counters, and the standalone process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.scripted_server import Fault, ScriptedServer

REPO_ROOT = Path(__file__).resolve().parents[2]


def shout(request_json: dict[str, Any], index: int) -> str:
    return f"LOUD {index}"


async def _fetch(method: str, url: str, body: Any = None) -> tuple[int, dict[str, str], str]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.text()


def fetch(method: str, url: str, body: Any = None) -> tuple[int, dict[str, str], str]:
    return asyncio.run(_fetch(method, url, body))


def chat_body(text: str = "one two three", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def test_endpoints_and_completion_shape() -> None:
    with ScriptedServer(model="served-model") as srv:
        assert srv.base_url == f"http://127.0.0.1:{srv.port}/v1"
        assert fetch("GET", f"{srv.url}/health")[0] == 200
        status, _, text = fetch("GET", f"{srv.base_url}/models")
        assert status == 200 and '"served-model"' in text
        status, headers, text = fetch("POST", f"{srv.base_url}/chat/completions", chat_body())
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        reply = json.loads(text)
        assert reply["object"] == "chat.completion"
        assert reply["choices"][0]["message"] == {
            "role": "assistant",
            "content": "echo: one two three",
        }
        assert reply["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        assert srv.request_count == 1 and srv.status_counts == {200: 1}
        assert srv.requests == [chat_body()]


def test_reply_by_dotted_path_and_injected_faults_first() -> None:
    with ScriptedServer(reply="tests.support.test_scripted_server:shout") as srv:
        srv.inject([Fault(status=429, retry_after=1.5, retry_after_ms=1500), Fault(status=400)])
        assert srv.pending_faults == 2
        url = f"{srv.base_url}/chat/completions"
        status, headers, text = fetch("POST", url, chat_body())
        assert status == 429 and headers["Retry-After"] == "1.5"
        assert headers["retry-after-ms"] == "1500" and "rate_limit_error" in text
        assert fetch("POST", url, chat_body())[0] == 400
        status, _, text = fetch("POST", url, chat_body())
        assert status == 200 and "LOUD 2" in text
        assert srv.status_counts == {429: 1, 400: 1, 200: 1}
        assert srv.fault_counts == {"status": 2}


def test_malformed_drop_and_stop_wakes_stalled_requests() -> None:
    url_holder: list[str] = []
    with ScriptedServer() as srv:
        url = f"{srv.base_url}/chat/completions"
        url_holder.append(url)
        srv.inject([Fault(kind="malformed"), Fault(kind="drop")])
        status, _, text = fetch("POST", url, chat_body())
        assert status == 200 and text.startswith("{") and not text.rstrip().endswith("}")
        with pytest.raises(aiohttp.ClientError):
            fetch("POST", url, chat_body())
        assert srv.fault_counts == {"malformed": 1, "drop": 1}
        srv.inject([Fault(kind="timeout", seconds=60)])

        async def stalled() -> None:
            timeout = aiohttp.ClientTimeout(total=0.3)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                with pytest.raises(asyncio.TimeoutError):
                    await session.post(url, json=chat_body())

        asyncio.run(stalled())
        start = time.monotonic()
    assert time.monotonic() - start < 3.0  # stop() did not wait out the 60 s stall
    with pytest.raises(aiohttp.ClientError):
        fetch("POST", url_holder[0], chat_body())


def test_max_tokens_stop_and_no_recording() -> None:
    with ScriptedServer(reply=lambda body, i: "a b c ### d e", record_requests=False) as srv:
        url = f"{srv.base_url}/chat/completions"
        _, _, text = fetch("POST", url, chat_body(max_tokens=2))
        assert '"a b"' in text and '"length"' in text
        _, _, text = fetch("POST", url, chat_body(stop=["###"]))
        assert '"a b c "' in text and '"stop"' in text
        assert srv.requests == [] and srv.request_count == 2


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        Fault()
    with pytest.raises(ValueError):
        Fault(status=200)
    with pytest.raises(ValueError):
        Fault(kind="explode")  # type: ignore[arg-type]
    assert Fault(status=503).kind == "status"


def test_concurrent_requests_overlap() -> None:
    with ScriptedServer(latency=0.3) as srv:

        async def many() -> list[int]:
            async with aiohttp.ClientSession() as session:

                async def one() -> int:
                    url = f"{srv.base_url}/chat/completions"
                    async with session.post(url, json=chat_body()) as resp:
                        await resp.read()
                        return resp.status

                return await asyncio.gather(*(one() for _ in range(200)))

        start = time.monotonic()
        statuses = asyncio.run(many())
        elapsed = time.monotonic() - start
    assert statuses == [200] * 200
    assert elapsed < 3.0, f"200 requests at 0.3 s latency took {elapsed:.1f} s"


def test_standalone_process() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.scripted_server", "--port", "0", "--latency", "0.01"]
        + ["--reply", "tests.support.test_scripted_server:shout"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:"), line
        base_url = line.split()[1]
        status, _, text = fetch("POST", f"{base_url}/chat/completions", chat_body())
        assert status == 200 and "LOUD 0" in text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
