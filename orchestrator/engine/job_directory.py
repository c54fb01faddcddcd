"""The job-state actors a generation worker uses, handed over by name instead of by handle.

Generation workers are restarted by Ray (``max_restarts``) after a crash or a lost node, and Ray
restarts an actor by re-running its constructor with the original arguments. Arguments that are
object-store references (an ``ObjectRef``, and also every actor handle, which carries one) are
not kept alive for that re-run: Ray warns "constructor arguments in the object store and
max_restarts > 0", and ray-project/ray#53727 shows a restart failing once they are evicted.
So workers get only plain values: the name of the run's metrics hub (a named actor on the
driver's node without restarts, ``orchestrator.telemetry.metrics``), which also keeps the
handles of the run's limiter and teacher-replica actors and the decontamination index (a
reference the driver owns), registered with ``publish`` after it started (a method call, not a
constructor argument). A worker, first start or restart, asks it for them with
``JobActors.lookup``; handles and references that come back as a method's *result* are
borrowed the normal way. (One actor for both: a run starts as few processes as it can.)

What it does NOT do: create, restart or kill the actors it lists (the engine does), or outlive
the driver (nothing of a run does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray

from orchestrator.telemetry.metrics import NAMESPACE

__all__ = ["JobActors", "publish"]


@dataclass
class JobActors:
    """Handles a worker needs (``index_ref``: ``[ObjectRef]`` of the n-gram index, or None)."""

    metrics: Any
    index_ref: list[Any] | None = None
    limiter: Any = None
    teacher_pool: Any = None

    @staticmethod
    def lookup(directory_name: str) -> JobActors:
        """The handles the run's hub lists (from a worker, also after a restart)."""
        directory = ray.get_actor(directory_name, namespace=NAMESPACE)
        return JobActors(**ray.get(directory.actors.remote()))

    def index(self) -> Any:
        """The decontamination index, fetched from the object store (None if disabled)."""
        return ray.get(self.index_ref[0]) if self.index_ref else None


def publish(hub: Any, hub_name: str, actors: JobActors) -> str:
    """List ``actors`` on the run's metrics hub (waits until it holds them); returns the name
    workers look it up by."""
    ray.get(hub.register_actors.remote(dict(vars(actors))))
    return hub_name
