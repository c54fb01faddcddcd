"""Route one worker's teacher requests over the healthy replicas, least in-flight first.

``RoutedTeacher`` has ``TeacherClient``'s interface (``settings``, ``chat``, ``stats``,
``on_attempt``, ``close``), so pipeline steps cannot tell it from a single endpoint. It keeps one
``TeacherClient`` per replica URL and refreshes the healthy set from the job's
``ReplicaSupervisor`` every ``teacher.replica.poll_s``. Each request goes to the healthy replica
with the fewest of *this worker's* requests in flight (ties: the one sent fewer so far).

Re-sends: the per-replica clients keep tenacity's retries for 429/5xx/malformed replies, but a
refused, reset or dropped connection or a timeout (``openai.APIConnectionError``, judged by the
exception type) fails at once; the router then marks that replica suspect (skipped until the
supervisor reports it restarted, or for a few health intervals) and sends the same request to
another healthy replica, waiting for one when none is up. A request is therefore never lost to
a dying replica, and since only the completion that came back is returned to the step, each
seed still yields one set of rows (the worker commits each seed once). Re-sends are counted in
``teacher_replicas/resends``; requests per replica in ``teacher_replicas/sent:replica-<i>``.

What it does NOT do: health checks or restarts (``orchestrator.teacher.pool``), cancel the
request left on a replica that merely stalled (it is abandoned; its reply is discarded), or
balance across workers (each worker balances its own requests; together that spreads load).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import openai

from orchestrator.teacher.client import (
    AttemptObserver,
    TeacherClient,
    TeacherError,
    TeacherFatalError,
)
from orchestrator.teacher.replies import Completion
from orchestrator.teacher.settings import TeacherSettings
from orchestrator.telemetry.counters import Counters

__all__ = ["RoutedTeacher", "pick_replica"]

log = logging.getLogger(__name__)


@dataclass
class Route:
    index: int
    url: str
    incarnation: str
    client: TeacherClient
    in_flight: int = 0
    sent: int = 0
    suspect_until: float = 0.0


def pick_replica(routes: list[Route], now: float) -> Route | None:
    """Least in-flight among the routes not under suspicion; ties go to the least used."""
    usable = [r for r in routes if r.suspect_until <= now]
    return min(usable, key=lambda r: (r.in_flight, r.sent, r.index)) if usable else None


class RoutedTeacher:
    """Chat completions spread over the job's teacher replicas (see module docstring)."""

    def __init__(
        self, settings: TeacherSettings, supervisor: Any, api_key: str | None = None
    ) -> None:
        """``supervisor``: the job's ``ReplicaSupervisor`` handle, or None for a fixed set of
        endpoints given to ``refresh`` (tests, benchmarks)."""
        self.settings = settings
        self.supervisor = supervisor
        self.api_key = api_key
        self.counters: Counters | None = None  # the worker's counters, when it attaches them
        r = settings.replica
        self.suspect_s = r.health_interval_s * (r.unhealthy_after + 1) + r.health_timeout_s
        self.max_resends = settings.max_attempts + 2 * settings.replicas
        self.wait_s = r.startup_timeout_s  # longest wait for any healthy replica
        self._routes: dict[int, Route] = {}
        self._healthy: set[int] = set()
        self._retired: list[TeacherClient] = []
        self._changed = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._on_attempt: AttemptObserver | None = None
        self._own: dict[str, int] = {"resends": 0}

    # ------------------------------------------------------------------ client interface
    @property
    def on_attempt(self) -> AttemptObserver | None:
        return self._on_attempt

    @on_attempt.setter
    def on_attempt(self, observer: AttemptObserver | None) -> None:
        self._on_attempt = observer
        for route in self._routes.values():
            route.client.on_attempt = observer

    @property
    def stats(self) -> dict[str, int]:
        """``TeacherClient.stats`` summed over every replica client, plus ``resends``."""
        total: dict[str, int] = dict(self._own)
        for client in [*(r.client for r in self._routes.values()), *self._retired]:
            for name, value in client.stats.items():
                total[name] = total.get(name, 0) + value
        return total

    def routes(self) -> list[Route]:
        return [self._routes[i] for i in sorted(self._healthy) if i in self._routes]

    def replica_load(self) -> dict[str, int]:
        """Requests this worker has in flight per replica URL (a dashboard gauge)."""
        return {r.url: r.in_flight for r in self._routes.values()}

    async def chat(self, messages: list[dict[str, str]], **kwargs: Any) -> Completion:
        """One completion from some healthy replica; re-sent when that replica is unreachable."""
        await self._ensure_polling()
        resends = 0
        while True:
            route = await self._pick()
            route.in_flight += 1
            route.sent += 1
            self._count(f"sent:replica-{route.index}")
            try:
                return await route.client.chat(messages, **kwargs)
            except TeacherFatalError:
                raise
            except TeacherError as err:
                if not isinstance(err.__cause__, openai.APIConnectionError):
                    raise
                route.suspect_until = time.monotonic() + self.suspect_s
                resends += 1
                self._own["resends"] += 1
                self._count("resends")
                if resends > self.max_resends:
                    raise TeacherError(
                        f"teacher replicas unreachable: {resends} sends of one request failed "
                        f"to connect; last: {err}",
                        "replicas_unreachable",
                        None,
                        resends,
                    ) from err
            finally:
                route.in_flight -= 1

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        for client in [*(r.client for r in self._routes.values()), *self._retired]:
            await client.close()

    # ------------------------------------------------------------------ internals
    def _count(self, name: str) -> None:
        if self.counters is not None:
            self.counters.add("teacher_replicas", name)

    async def _pick(self) -> Route:
        deadline = time.monotonic() + self.wait_s
        while True:
            now = time.monotonic()
            route = pick_replica(self.routes(), now)
            if route is not None:
                return route
            if now > deadline:
                raise TeacherError(
                    f"no healthy teacher replica for {self.wait_s:g} s", "no_replica", None, 0
                )
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.25)

    async def _ensure_polling(self) -> None:
        if self._poller is None and self.supervisor is not None:
            self.refresh(await self.supervisor.endpoints.remote())
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.replica.poll_s)
            try:
                self.refresh(await self.supervisor.endpoints.remote())
            except Exception as err:  # supervisor gone: keep the last known set
                log.warning("teacher replica list not refreshed: %s", type(err).__name__)

    def refresh(self, endpoints: list[dict[str, Any]]) -> None:
        """Adopt the supervisor's healthy set; a restarted replica gets a fresh client."""
        healthy = set()
        for ep in endpoints:
            i = int(ep["index"])
            healthy.add(i)
            route = self._routes.get(i)
            if route is None or route.url != ep["url"] or route.incarnation != ep["incarnation"]:
                if route is not None:
                    self._retired.append(route.client)
                self._routes[i] = Route(i, ep["url"], ep["incarnation"], self._client(ep["url"]))
        self._healthy = healthy
        self._changed.set()

    def _client(self, url: str) -> TeacherClient:
        client = TeacherClient(self.settings.model_copy(update={"base_url": url}), self.api_key)
        client.retry_connection_errors = False
        client.on_attempt = self._on_attempt
        return client
