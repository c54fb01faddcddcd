"""The replica pool: start ``teacher.replicas`` server replicas, keep them healthy, publish them.

``ReplicaSupervisor`` (an async Ray actor, one per job) creates the ``TeacherReplica`` actors
(placement group per replica when it needs more than one GPU), starts each replica's server
and then probes it every ``health_interval_s``. A replica whose actor died, whose server exited,
or that failed ``unhealthy_after`` probes in a row (hung: no answer within
``health_timeout_s``) is restarted the Ray way: its server group is killed and the actor is
``ray.kill``-ed with ``no_restart=False``, Ray brings up a fresh actor (on the same resources,
or wherever they are free) and the supervisor starts its server again. The others keep serving
meanwhile. ``endpoints()`` lists the healthy replicas (index, base URL, incarnation); workers
poll it (``orchestrator.teacher.routing``). A replica that exceeds ``max_restarts``, or whose
start failed permanently (e.g. vLLM not installed), stays down and its error is kept.

``ReplicaPool`` is the driver's handle: ``start()`` returns once at least one replica is
healthy (raises ``TeacherSetupError`` when none can start), ``status()``, ``shutdown()``.

What it does NOT do: route or re-send requests (workers do), or scale the number of replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayActorError, RayTaskError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from orchestrator.engine.placement import on_driver_node
from orchestrator.teacher.launch import TeacherSetupError, check_vllm
from orchestrator.teacher.replicas import TeacherReplica, replica_placement
from orchestrator.teacher.settings import TeacherSettings

__all__ = ["ReplicaPool", "ReplicaSupervisor"]

log = logging.getLogger(__name__)
_DEAD_ACTOR_TRIES = 60  # calls failing with "actor dead" (1 s apart) before giving up on it


@dataclass
class ReplicaState:
    index: int
    phase: str = "starting"  # starting | healthy | restarting | failed
    url: str | None = None
    incarnation: str | None = None
    node: str | None = None
    server_pid: int | None = None
    actor_pid: int | None = None
    restarts: int = 0
    last_failure: str | None = None  # died | down | unhealthy | unresponsive | start_failed
    error: str | None = None


async def _within(ref: Any, timeout: float) -> Any:
    async def wait() -> Any:
        return await ref

    return await asyncio.wait_for(wait(), timeout)


def _setup_error(err: BaseException) -> TeacherSetupError | None:
    cause = err.cause if isinstance(err, RayTaskError) else err
    return cause if isinstance(cause, TeacherSetupError) else None


@ray.remote(num_cpus=0, max_restarts=0)
class ReplicaSupervisor:
    """Starts, watches and restarts the replicas (see module docstring)."""

    def __init__(self, settings_json: str) -> None:
        self.settings = TeacherSettings.model_validate_json(settings_json)
        options, bundle = replica_placement(self.settings)
        self.groups = []
        self.replicas = []
        for i in range(self.settings.replicas):
            opts = dict(options)
            if bundle is not None:
                group = placement_group([bundle], strategy="STRICT_PACK")
                self.groups.append(group)
                opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                    group, placement_group_capture_child_tasks=True
                )
            self.replicas.append(TeacherReplica.options(**opts).remote(settings_json, i))
        self.states = [ReplicaState(i) for i in range(self.settings.replicas)]
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._watch(i)) for i in range(len(self.replicas))]

    def endpoints(self) -> list[dict[str, Any]]:
        """The healthy replicas: ``{"index", "url", "incarnation"}`` each."""
        return [
            {"index": s.index, "url": s.url, "incarnation": s.incarnation}
            for s in self.states
            if s.phase == "healthy"
        ]

    def status(self) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.states]

    async def wait_ready(self, min_healthy: int = 1, timeout_s: float | None = None) -> None:
        """Return once ``min_healthy`` replicas are healthy; raise ``TeacherSetupError`` when
        too many have failed for good or ``timeout_s`` passed."""
        need = min(min_healthy, len(self.states))
        limit = timeout_s or self.settings.replica.startup_timeout_s + 60
        deadline = time.monotonic() + limit
        while True:
            if sum(s.phase == "healthy" for s in self.states) >= need:
                return
            failed = [s for s in self.states if s.phase == "failed"]
            late = time.monotonic() > deadline
            if len(self.states) - len(failed) < need or late:
                errors = [s.error for s in failed if s.error] or [
                    s.error or f"replica {s.index}: {s.phase}" for s in self.states
                ]
                when = f"within {limit:g} s"
                raise TeacherSetupError(
                    f"{need} of {len(self.states)} teacher replica(s) could not be made "
                    f"healthy{' ' + when if late and not failed else ''}: {errors[0]}",
                    permanent=bool(failed),
                )
            await asyncio.sleep(0.2)

    async def _watch(self, i: int) -> None:
        r, state = self.settings.replica, self.states[i]
        dead = 0
        while True:
            state.phase = "starting" if state.restarts == 0 else "restarting"
            try:
                info = await _within(self.replicas[i].start.remote(), r.startup_timeout_s + 60)
            except (RayActorError, asyncio.TimeoutError) as err:
                if isinstance(err, asyncio.TimeoutError):
                    await self._restart(i, "unresponsive")
                dead += 1
                if dead > _DEAD_ACTOR_TRIES or state.restarts > r.max_restarts:
                    state.phase, state.error = "failed", f"replica {i} actor is dead: {err}"
                    return
                await asyncio.sleep(1.0)
                continue
            except Exception as err:  # the start itself failed (re-raised from the actor)
                setup = _setup_error(err)
                state.error = str(setup) if setup is not None else repr(err)
                if (setup is not None and setup.permanent) or state.restarts >= r.max_restarts:
                    state.phase = "failed"
                    return
                await self._restart(i, "start_failed")
                continue
            dead = 0
            for key in ("url", "incarnation", "node", "server_pid", "actor_pid"):
                setattr(state, key, info[key])
            state.phase, state.error = "healthy", None
            await self._probe_until_bad(i)

    async def _probe_until_bad(self, i: int) -> None:
        """Probe replica ``i`` until it must be restarted; restart it (unless Ray already is)."""
        r = self.settings.replica
        bad = 0
        while True:
            await asyncio.sleep(r.health_interval_s)
            try:
                verdict = await _within(self.replicas[i].check.remote(), r.health_timeout_s + 2)
            except RayActorError:
                verdict = "died"
            except asyncio.TimeoutError:
                verdict = "unresponsive"
            if verdict == "ok":
                bad = 0
                continue
            bad += 1
            if verdict in ("died", "down") or bad >= r.unhealthy_after:
                if verdict == "died":
                    self._mark_restart(i, verdict)  # Ray restarts a dead actor by itself
                else:
                    await self._restart(i, verdict)
                return

    def _mark_restart(self, i: int, why: str) -> None:
        state = self.states[i]
        state.phase, state.last_failure = "restarting", why
        state.restarts += 1
        log.warning("teacher replica %d (%s): %s; restarting", i, state.url, why)

    async def _restart(self, i: int, why: str) -> None:
        """Kill the server group at once (a hung server gets no grace), then the actor, which
        Ray restarts because ``no_restart=False``; return once a new incarnation answers."""
        self._mark_restart(i, why)
        replica = self.replicas[i]
        old = None
        with contextlib.suppress(Exception):
            await _within(replica.stop_server.remote(False), 15)
            old = await _within(replica.incarnation_id.remote(), 5)
        ray.kill(replica, no_restart=False)
        if old is not None:
            await self._until_replaced(i, old)

    async def _until_replaced(self, i: int, old: str) -> None:
        """Wait until the process that answers for replica ``i`` is not incarnation ``old``.

        ``ray.kill`` is delivered through the GCS while calls go straight to the actor, so a
        ``start`` sent right after it can run in the dying process. Ray kills a dying worker's
        child processes first, so that start would report our brand-new server as killed (-9),
        a failure of the old incarnation counted against the new one."""
        deadline = time.monotonic() + self.settings.replica.startup_timeout_s + 60
        while time.monotonic() < deadline:
            try:
                if await _within(self.replicas[i].incarnation_id.remote(), 30) != old:
                    return
            except ActorDiedError:
                return  # out of restarts: the caller's next call sees that
            except (RayActorError, asyncio.TimeoutError):
                pass  # the old process died with this call in flight, or Ray is restarting it
            await asyncio.sleep(0.2)

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # A graceful stop for serving replicas; one still starting (or never placed) is busy in
        # start() and would not answer: killing its actor ends its server (parent-death signal).
        stops = [
            _within(rep.stop_server.remote(True), 25)
            for rep, state in zip(self.replicas, self.states, strict=True)
            if state.phase == "healthy"
        ]
        await asyncio.gather(*stops, return_exceptions=True)
        for replica in self.replicas:
            ray.kill(replica, no_restart=True)
        for group in self.groups:
            remove_placement_group(group)


class ReplicaPool:
    """Driver-side handle: ``with ReplicaPool(settings) as pool: pool.supervisor ...``."""

    def __init__(self, settings: TeacherSettings) -> None:
        self.settings = settings
        self.supervisor: Any = None

    def start(self, min_healthy: int = 1, timeout_s: float | None = None) -> ReplicaPool:
        self.preflight()
        # job state, like dedup and metrics: on the driver's node, never on a node that can go
        self.supervisor = ReplicaSupervisor.options(**on_driver_node()).remote(
            self.settings.model_dump_json()
        )
        try:
            ray.get(self.supervisor.run.remote())
            ray.get(self.supervisor.wait_ready.remote(min_healthy, timeout_s))
        except Exception as err:
            self.shutdown()
            setup = _setup_error(err)
            if setup is not None:
                raise TeacherSetupError(str(setup), setup.permanent) from None
            raise
        return self

    def preflight(self) -> None:
        """Fail at once, not after the startup timeout, when the replicas cannot be placed: the
        cluster has fewer GPUs than one replica needs, or (one-node cluster) vLLM is missing."""
        s = self.settings
        if s.replica.launcher is None and len(ray.nodes()) <= 1:
            check_vllm(ray.util.get_node_ip_address())
        options, _ = replica_placement(s)
        cluster = ray.cluster_resources()
        needs = {"GPU": options["num_gpus"], **options.get("resources", {})}
        for name, amount in needs.items():
            if amount > cluster.get(name, 0.0):
                raise TeacherSetupError(
                    f"a teacher replica needs {amount:g} {name} (tensor_parallel_size "
                    f"{s.tensor_parallel_size}, teacher.replica) but the Ray cluster has "
                    f"{cluster.get(name, 0.0):g}; add nodes that have it or change teacher.replica",
                    permanent=True,
                )

    def wait_ready(self, min_healthy: int, timeout_s: float | None = None) -> None:
        ray.get(self.supervisor.wait_ready.remote(min_healthy, timeout_s))

    def status(self) -> list[dict[str, Any]]:
        return ray.get(self.supervisor.status.remote()) if self.supervisor is not None else []

    def endpoints(self) -> list[dict[str, Any]]:
        return ray.get(self.supervisor.endpoints.remote())

    def shutdown(self) -> None:
        supervisor, self.supervisor = self.supervisor, None
        if supervisor is None:
            return
        with contextlib.suppress(Exception):
            ray.get(supervisor.shutdown.remote(), timeout=90)
        ray.kill(supervisor)

    def __enter__(self) -> ReplicaPool:
        return self if self.supervisor is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
