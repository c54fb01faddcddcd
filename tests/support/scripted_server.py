"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests and local benchmarks.

What it does:

* serves ``POST /v1/chat/completions`` (non-streaming, OpenAI response shape with ``usage``),
  ``GET /v1/models`` and ``GET /health`` from an aiohttp app bound to 127.0.0.1 only;
* with ``known_models=[...]`` it serves only those models, like vLLM or OpenAI: ``/v1/models``
  lists them and a chat request for another model gets 404 ``model_not_found``;
  ``models_fault=Fault(...)`` answers every ``GET /v1/models`` with that fault instead (e.g. an
  HTML page: ``Fault(kind="malformed", body="<html>...", content_type="text/html")``);
* answers each chat request with a *reply function* ``(request_json, index) -> str | Fault``
  (a callable, or a dotted path ``"pkg.module:function"`` so it can be pickled into a Ray actor
  or named on a command line); ``index`` is the 0-based number of the chat request;
* injects faults, either returned by the reply function or queued with ``inject([...])`` (queued
  faults are served to the next requests in order, whatever the reply function says):
  ``Fault(status=429, retry_after=0.2)`` and other 4xx/5xx statuses (OpenAI-shaped error body,
  optional ``Retry-After`` / ``retry-after-ms`` headers), ``Fault(kind="timeout", seconds=s)``
  (stall ``s`` seconds before answering, i.e. past a client's read timeout),
  ``Fault(kind="malformed")`` (200 with a body that is not a chat completion; invalid JSON unless
  ``body=`` says otherwise) and ``Fault(kind="drop")`` (close the connection, no response);
* adds ``rate_limit_headers`` (e.g. OpenAI's ``x-ratelimit-limit-requests``; a dict, or a
  callable returning one per response) to chat replies and status faults, when given;
* sleeps ``latency`` seconds (asyncio, so hundreds of requests wait concurrently) per request;
  with ``max_concurrency=K`` at most K requests are served at once (the rest queue), which
  makes it a latency-bound server of K/latency requests/s, like a model server at its batch cap;
* honours ``max_tokens``/``max_completion_tokens`` (truncates to that many words, finish reason
  ``"length"``) and ``stop`` (cuts at the first stop string, finish reason ``"stop"``);
* counts what it saw: ``requests`` (bodies, unless ``record_requests=False``),
  ``request_count``, ``status_counts`` (by HTTP status sent) and ``fault_counts`` (by kind);
* serves the Batch API (files + batches, ``srv.batches``; see ``scripted_batches.py``): each
  batch line is answered as one chat request (same counters, faults and reply function) after
  ``batch_delay`` seconds.

Token usage is an approximation: prompt tokens are the whitespace-separated words of all message
contents, completion tokens the words of the reply. No tokenizer is involved.

What it does NOT do: streaming (``stream=true`` is answered as if it were false), tools, ``n > 1``,
logprobs, authentication (any API key is accepted; use ``Fault(status=401)`` to simulate a
rejection), or listening on any address other than 127.0.0.1.

Use it in-process (it runs its own event loop in a background thread)::

    with ScriptedServer(reply=my_reply, latency=0.05) as srv:
        client = AsyncOpenAI(base_url=srv.base_url, api_key="x")
        srv.inject([Fault(status=500)])

as a Ray actor (``ray.remote(ScriptedServer).remote(reply="pkg.mod:fn")``, then ``start``,
``inject``, ``snapshot`` and ``stop`` remotely), or as a separate process, which prints
``READY <base_url>`` once it listens::

    python -m tests.support.scripted_server --port 0 --latency 1.0 [--reply pkg.mod:function]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Union

from aiohttp import web

from tests.support.scripted_batches import BatchEndpoints

__all__ = ["Fault", "ReplyFn", "ScriptedServer", "default_reply", "resolve_reply"]

HOST = "127.0.0.1"
FaultKind = Literal["status", "timeout", "malformed", "drop"]
_FAULT_KINDS = ("status", "timeout", "malformed", "drop")
_DEFAULT_MALFORMED_BODY = '{"id": "chatcmpl-broken", "object": "chat.completion", "choices": ['
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


@dataclass(frozen=True)
class Fault:
    """One injected failure.

    ``Fault(status=...)`` answers with that 4xx/5xx status; ``retry_after`` (seconds, or an
    HTTP-date string) and ``retry_after_ms`` set the matching headers. ``Fault(kind="timeout",
    seconds=s)`` stalls ``s`` seconds then answers normally. ``Fault(kind="malformed", body=...)``
    answers 200 with ``body`` (default: truncated JSON) as ``content_type``.
    ``Fault(kind="drop")`` closes the connection without a response.
    """

    status: int | None = None
    kind: FaultKind | None = None
    retry_after: float | str | None = None
    retry_after_ms: float | None = None
    seconds: float = 30.0
    body: str | None = None
    content_type: str = "application/json"
    message: str | None = None  # a status fault's error message (default: "scripted fault")
    code: str | None = None  # a status fault's error code, e.g. "model_not_found"

    def __post_init__(self) -> None:
        kind = self.kind
        if kind is None:
            if self.status is None:
                raise ValueError("Fault needs status= or kind=")
            kind = "status"
        if kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {_FAULT_KINDS}")
        if kind == "status" and (self.status is None or not 400 <= self.status <= 599):
            raise ValueError(f"a status fault needs a 4xx/5xx status, got {self.status!r}")
        if kind != "status" and self.status is not None:
            raise ValueError(f"a {kind!r} fault takes no status")
        object.__setattr__(self, "kind", kind)


ReplyFn = Callable[[dict[str, Any], int], Union[str, Fault]]  # noqa: UP007 (runtime alias, py3.10)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def default_reply(request_json: dict[str, Any], index: int) -> str:
    """Deterministic echo: ``"echo: "`` followed by the last message's text."""
    messages = request_json.get("messages") or [{}]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    return "echo: " + _content_text(last.get("content"))


def resolve_reply(reply: ReplyFn | str | None) -> ReplyFn:
    """Return the reply callable for ``reply``: a callable, a dotted path, or None (default).

    Dotted paths may be ``"pkg.module:function"`` or ``"pkg.module.function"``.
    """
    if reply is None:
        return default_reply
    if callable(reply):
        return reply
    if not isinstance(reply, str):
        raise TypeError(f"reply must be a callable or a dotted path, not {type(reply).__name__}")
    module_name, sep, attr = reply.partition(":")
    if not sep:
        module_name, _, attr = reply.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"reply path {reply!r} must look like 'pkg.module:function'")
    fn = getattr(importlib.import_module(module_name), attr)
    if not callable(fn):
        raise TypeError(f"reply path {reply!r} does not name a callable")
    return fn


def _words(text: str) -> int:
    return len(text.split())


class ScriptedServer:
    """An OpenAI-compatible chat server on 127.0.0.1 driven by a reply function (see module doc).

    Thread-safe for the driving thread: ``inject``, the counters and ``stop`` may be called from
    any thread while the server's own event loop runs in a background thread.
    """

    def __init__(
        self,
        reply: ReplyFn | str | None = None,
        *,
        port: int = 0,
        latency: float = 0.0,
        model: str = "scripted-model",
        record_requests: bool = True,
        shutdown_timeout: float = 2.0,
        rate_limit_headers: dict[str, str] | Callable[[], dict[str, str]] | None = None,
        batch_delay: float = 0.0,
        max_concurrency: int | None = None,
        known_models: Iterable[str] | None = None,
        models_fault: Fault | None = None,
    ) -> None:
        if latency < 0:
            raise ValueError("latency must be >= 0")
        self._reply = resolve_reply(reply)
        self._requested_port = port
        self.latency = latency
        self.max_concurrency = max_concurrency
        self._serving: asyncio.Semaphore | None = None
        self.model = model
        self.known_models = None if known_models is None else list(known_models)
        self.models_fault = models_fault
        self.record_requests = record_requests
        self._shutdown_timeout = shutdown_timeout
        self.rate_limit_headers = rate_limit_headers
        self.batches = BatchEndpoints(self, delay=batch_delay)  # the Batch API (files + batches)

        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._request_count = 0
        self._first_at: float | None = None  # wall-clock time of the first chat request
        self._last_at: float | None = None
        self._second_at: float | None = None  # a run's first seed request (the 1st: its check)
        self._status_counts: Counter[int] = Counter()
        self._fault_counts: Counter[str] = Counter()
        self._injected: deque[Fault] = deque()

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._startup_error: BaseException | None = None
        self._port: int | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start listening (returns once the port is bound). Raises if binding fails.

        Returns None (not ``self``) so it can be called on a Ray actor wrapping this class.
        """
        if self._thread is not None:
            raise RuntimeError("ScriptedServer already started")
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="scripted-openai-server", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("ScriptedServer did not start within 30 s")
        if self._startup_error is not None:
            self._thread.join(timeout=5)
            self._thread = None
            raise RuntimeError("ScriptedServer failed to start") from self._startup_error

    def stop(self) -> None:
        """Stop serving: wake stalled requests, close connections, end the loop thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed in between
                loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=self._shutdown_timeout + 10)
        self._thread = None

    def __enter__(self) -> ScriptedServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._setup())
        except BaseException as exc:  # reported to start()
            self._startup_error = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(self._teardown())
            finally:
                loop.close()

    async def _setup(self) -> None:
        self._stopping = asyncio.get_running_loop().create_future()
        if self.max_concurrency:
            self._serving = asyncio.Semaphore(self.max_concurrency)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/stats", self._stats)  # for benchmarks in other processes
        self.batches.add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        site = web.TCPSite(runner, HOST, self._requested_port, backlog=2048)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def _teardown(self) -> None:
        if self._stopping is not None and not self._stopping.done():
            self._stopping.set_result(None)
        if self._runner is not None:
            await self._runner.cleanup()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # ----------------------------------------------------------------- public state
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("ScriptedServer is not started")
        return self._port

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:PORT`` (``/health`` lives here)."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    def inject(self, faults: Iterable[Fault]) -> None:
        """Make the next ``len(faults)`` chat requests fail with these faults, in order."""
        faults = list(faults)
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"inject() takes Fault objects, got {type(fault).__name__}")
        with self._lock:
            self._injected.extend(faults)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._injected)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Copy of the chat request bodies received so far (empty if not recording)."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._request_count

    @property
    def status_counts(self) -> dict[int, int]:
        """Chat responses sent, by HTTP status (malformed replies count as 200)."""
        with self._lock:
            return dict(self._status_counts)

    @property
    def fault_counts(self) -> dict[str, int]:
        """Faults served, by kind (``status``, ``timeout``, ``malformed``, ``drop``)."""
        with self._lock:
            return dict(self._fault_counts)

    def snapshot(self) -> dict[str, Any]:
        """Plain-data summary (for Ray actors, where properties cannot be called remotely)."""
        with self._lock:
            return {
                "base_url": self.base_url,
                "request_count": self._request_count,
                "status_counts": dict(self._status_counts),
                "fault_counts": dict(self._fault_counts),
                "pending_faults": len(self._injected),
                "batches": self.batches.counts(),
            }

    def reset_counts(self) -> None:
        """Forget recorded requests and counts (queued faults stay queued)."""
        with self._lock:
            self._requests.clear()
            self._request_count = 0
            self._status_counts.clear()
            self._fault_counts.clear()

    # ----------------------------------------------------------------- handlers
    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the server stops."""
        if seconds <= 0:
            return
        assert self._stopping is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stopping), seconds)

    def _count(self, status: int, fault: Fault | None = None) -> None:
        with self._lock:
            self._status_counts[status] += 1
            if fault is not None:
                self._fault_counts[str(fault.kind)] += 1

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _stats(self, request: web.Request) -> web.Response:
        """Chat requests so far and the wall-clock time of the first, second and latest."""
        with self._lock:
            stats = {"requests": self._request_count, "first_request_at": self._first_at,
                     "second_request_at": self._second_at, "last_request_at": self._last_at}  # fmt: skip
        return web.json_response(stats)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        if self.models_fault is not None:
            return await self._serve_fault(request, {}, -1, self.models_fault, count=False)
        names = self.known_models if self.known_models is not None else [self.model]
        models = [
            {"id": name, "object": "model", "created": 0, "owned_by": "scripted"} for name in names
        ]
        return web.json_response({"object": "list", "data": models})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except ValueError:
            self._count(400)
            return _error_response(400, "request body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._count(400)
            return _error_response(400, "'messages' must be a list")

        index, fault = self._admit(body)
        if fault is None and self.known_models is not None:
            model = body.get("model")
            if model not in self.known_models:  # as vLLM / OpenAI answer an unknown model
                fault = Fault(
                    status=404, message=f"The model `{model}` does not exist.",
                    code="model_not_found",
                )  # fmt: skip

        if self._serving is None:
            await self._sleep(self.latency)
        else:
            async with self._serving:
                await self._sleep(self.latency)

        if fault is None:
            try:
                outcome = self._reply(body, index)
            except Exception as exc:  # a bug in a test's reply function: answer 500, say why
                self._count(500)
                return _error_response(500, f"reply function raised {type(exc).__name__}")
            if isinstance(outcome, Fault):
                fault = outcome
            else:
                self._count(200)
                completion = self._completion(body, index, str(outcome))
                return web.json_response(completion, headers=self._limit_headers())
        return await self._serve_fault(request, body, index, fault)

    def _admit(self, body: dict[str, Any]) -> tuple[int, Fault | None]:
        """Number a chat request (direct or a batch line), record it, take the next injected
        fault (None if none is queued)."""
        with self._lock:
            index = self._request_count
            self._request_count += 1
            self._last_at = time.time()
            self._first_at = self._first_at or self._last_at
            if index == 1:
                self._second_at = self._last_at
            if self.record_requests:
                self._requests.append(body)
            fault = self._injected.popleft() if self._injected else None
        return index, fault

    async def _serve_fault(
        self, request: web.Request, body: dict[str, Any], index: int, fault: Fault,
        count: bool = True,
    ) -> web.StreamResponse:  # fmt: skip
        # count=False: not a chat request (GET /v1/models), so not in the chat counters
        tally = self._count if count else (lambda status, fault=None: None)
        if fault.kind == "status":
            assert fault.status is not None
            tally(fault.status, fault)
            headers: dict[str, str] = {}
            if fault.retry_after is not None:
                ra = fault.retry_after
                headers["Retry-After"] = ra if isinstance(ra, str) else f"{ra:g}"
            if fault.retry_after_ms is not None:
                headers["retry-after-ms"] = f"{fault.retry_after_ms:g}"
            headers.update(self._limit_headers() or {})
            message = fault.message or f"scripted fault: HTTP {fault.status}"
            return _error_response(fault.status, message, headers, fault.code)
        if fault.kind == "malformed":
            tally(200, fault)
            text = _DEFAULT_MALFORMED_BODY if fault.body is None else fault.body
            return web.Response(status=200, text=text, content_type=fault.content_type)
        if fault.kind == "timeout":
            tally(200, fault)
            await self._sleep(fault.seconds)
            return web.json_response(self._completion(body, index, "late reply"))
        # drop: close the socket without writing a status line
        if count:
            with self._lock:
                self._fault_counts["drop"] += 1
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise asyncio.CancelledError  # aiohttp treats this as "connection lost"; nothing is sent

    def _limit_headers(self) -> dict[str, str] | None:
        """``rate_limit_headers`` (a dict, or a callable returning one) for this response."""
        headers = self.rate_limit_headers
        return dict(headers() if callable(headers) else headers) if headers else None

    def _completion(self, body: dict[str, Any], index: int, text: str) -> dict[str, Any]:
        finish_reason = "stop"
        stop = body.get("stop")
        stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
        cuts = [text.find(s) for s in stops if s and s in text]
        if cuts:
            text = text[: min(cuts)]
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and limit >= 0 and _words(text) > limit:
            text = " ".join(text.split()[:limit])
            finish_reason = "length"
        messages = body.get("messages") or []
        prompt_tokens = sum(
            _words(_content_text(m.get("content"))) for m in messages if isinstance(m, dict)
        )
        completion_tokens = _words(text)
        return {
            "id": f"chatcmpl-scripted-{index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _error_response(
    status: int, message: str, headers: dict[str, str] | None = None, code: str | None = None
) -> web.Response:
    error_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request")
    payload = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return web.json_response(payload, status=status, headers=headers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.scripted_server",
        description="Scripted OpenAI-compatible chat server on 127.0.0.1 (tests/benchmarks).",
    )
    parser.add_argument("--port", type=int, default=0, help="port (0: the OS picks one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds of sleep per request")
    parser.add_argument(
        "--max-concurrency", type=int, default=None, help="requests served at once (rest queue)"
    )
    parser.add_argument("--reply", default=None, help="reply function as pkg.module:function")
    parser.add_argument("--model", default="scripted-model", help="model id to report")
    parser.add_argument(
        "--no-record", action="store_true", help="do not keep request bodies (long benchmarks)"
    )
    args = parser.parse_args(argv)

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    server = ScriptedServer(
        reply=args.reply,
        port=args.port,
        latency=args.latency,
        model=args.model,
        record_requests=not args.no_record,
        max_concurrency=args.max_concurrency,
    )
    with server:
        print(f"READY {server.base_url}", flush=True)
        while not done.wait(0.5):
            pass
        print(f"STOPPING after {server.request_count} chat requests", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
