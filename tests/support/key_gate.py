"""A 127.0.0.1 front for the scripted teacher that checks the API key each request carries.

``KeyGate(upstream_base_url, key)`` answers ``POST /v1/chat/completions`` and ``GET /v1/models``
with 401 unless the request has ``Authorization: Bearer <key>`` (counted in ``rejected``), else
forwards the request to the upstream server and returns its answer. It shows that a key reached
the code calling the teacher (the scripted server itself accepts any key). It does NOT forward
other routes, stream, or listen anywhere but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import aiohttp
from aiohttp import web


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KeyGate:
    """127.0.0.1 front of the scripted teacher: 401 unless `Authorization: Bearer <key>`."""

    def __init__(self, upstream: str, key: str) -> None:
        self.upstream, self.key, self.rejected = upstream, key, 0
        self.loop = asyncio.new_event_loop()
        self.port = _free_port()

    async def _chat(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            self.rejected += 1
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        async with aiohttp.ClientSession() as session:
            upstream = await session.request(
                request.method, f"{self.upstream}/{request.path.removeprefix('/v1/')}",
                data=await request.read(), headers={"Content-Type": "application/json"},
            )  # fmt: skip
            body = await upstream.read()
        return web.Response(body=body, status=upstream.status, content_type="application/json")

    def __enter__(self) -> str:
        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_get("/v1/models", self._chat)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

        self.loop.run_until_complete(serve())
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
