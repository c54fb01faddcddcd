"""Per-actor and per-node state of a job, for the dashboard (alive / restarting / dead).

``ClusterState.poll`` asks Ray at most every ``every_s`` seconds: nodes from the GCS
(``ray.nodes()``, always available), actors from Ray's state API (``ray.util.state.list_actors``
filtered to this job's ``GenerationWorker`` actors), which needs Ray's dashboard. Without it
(``include_dashboard=False``, the local default) or when the query fails, an actor's state is
derived from the metrics hub's last-push age instead: ``alive`` while it pushes, ``silent``
after ``SILENT_S`` without a push, ``starting`` before its first push. A state-API answer
(up to ``every_s`` old) saying an actor is still being created yields to a newer push.

What the driver itself saw overrides both when it is newer news: a worker whose task failed
because its process died is ``restarting`` until it answers a ping again, and ``dead`` once
Ray cannot bring it back (``orchestrator.engine.recovery.WorkerHealth``), with or without a dashboard;
only Ray's own ``dead`` outranks it. Teacher replicas' phases (healthy / starting /
restarting / failed, with restarts and last failure) come from the replica supervisor.

It only reports; it restarts nothing (Ray's ``max_restarts`` does) and renders nothing.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import ray

SILENT_S = 10.0
STARTING = ("pending_creation", "dependencies_unready")


def _dashboard_url() -> str | None:
    """This cluster's dashboard URL, or None when it runs without one. (Asked explicitly so the
    state API never falls back to some other cluster's dashboard on the default port.)"""
    try:
        from ray._private.worker import get_dashboard_url

        url = get_dashboard_url()
    except (ImportError, RuntimeError, AttributeError):
        return None
    return f"http://{url}" if url else None


class ClusterState:
    def __init__(
        self, workers: dict[str, Any], every_s: float = 3.0, supervisor: Any = None
    ) -> None:
        self.names = {handle._actor_id.hex(): name for name, handle in workers.items()}
        self.every_s = every_s
        self.supervisor = supervisor  # the teacher replica supervisor, if any
        self.replicas: list[dict[str, Any]] = []  # its status() rows, as of the last refresh
        self.address = _dashboard_url()
        self.job_id = ray.get_runtime_context().get_job_id()
        self._last = -float("inf")
        self._actors: dict[str, dict[str, Any]] = {}  # name -> state from the state API
        self._nodes: dict[str, dict[str, Any]] = {}  # node id -> {"node", "state"}

    def _refresh(self) -> None:
        if not ray.is_initialized():  # the run is over: keep the last known state
            return
        self._nodes = {
            n["NodeID"]: {
                "node": n["NodeManagerAddress"],
                "state": "alive" if n["Alive"] else "dead",
            }
            for n in ray.nodes()
        }
        if self.address is None:
            return
        from ray.util.state import list_actors
        from ray.util.state.exception import RayStateApiException

        try:
            listed = list_actors(
                address=self.address,
                filters=[("class_name", "=", "GenerationWorker"), ("job_id", "=", self.job_id)],
                timeout=3,
                raise_on_missing_output=False,
            )
        except (RayStateApiException, ConnectionError, TimeoutError):
            self.address = None  # unavailable: do not wait on it every poll
            self._actors = {}
            return
        self._actors = {
            self.names[a.actor_id]: {"state": a.state.lower(), "node_id": a.node_id}
            for a in listed
            if a.actor_id in self.names
        }

    def poll(
        self,
        last_push_s: dict[str, float],
        workers: dict[str, dict[str, Any]] | None = None,
        down: dict[str, str] | None = None,
        deaths: dict[str, int] | None = None,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(actors, nodes) rows of the progress view (see ``orchestrator.telemetry.dashboard``); an actor
        row's ``source`` says where its state came from: ``ray`` (state API), ``push`` or
        ``driver`` (``down``: worker name -> restarting | dead, what the driver saw); its
        ``restarts`` is how often the driver saw it die (``deaths``), so a restart that took
        less than a poll still shows."""
        if time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            self._refresh()
        if self.supervisor is not None and ray.is_initialized():  # one call to the driver's node
            # on failure the last known phases stay
            with contextlib.suppress(ray.exceptions.RayError, TimeoutError):
                self.replicas = ray.get(self.supervisor.status.remote(), timeout=3)
        workers, down, deaths = workers or {}, down or {}, deaths or {}
        actors, per_node = [], {info["node"]: 0 for info in self._nodes.values()}
        for name in self.names.values():
            age = last_push_s.get(name)
            pushed = workers.get(name) or {}
            known = self._actors.get(name)
            source = "ray" if known is not None else "push"
            if known is not None:
                state = known["state"]
                if state in STARTING and age is not None and age < SILENT_S:
                    state = "alive"  # it pushed since that (older) query: it runs
                node = self._nodes.get(known["node_id"] or "", {}).get("node")
            else:
                state = "starting" if age is None else "alive" if age < SILENT_S else "silent"
                node = pushed.get("node")
            if name in down and state != "dead":
                state, source = down[name], "driver"
            if node in per_node and state not in ("dead", "silent"):
                per_node[node] += 1
            actors.append({
                "name": name, "state": state, "node": node, "last_push_s": age, "source": source,
                "in_flight": pushed.get("in_flight", 0), "restarts": deaths.get(name, 0),
            })  # fmt: skip
        nodes = [{**info, "actors": per_node[info["node"]]} for info in self._nodes.values()]
        return actors, nodes
