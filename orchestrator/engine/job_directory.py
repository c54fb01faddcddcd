"""The job-state actors a generation worker uses, handed over by name instead of by handle.

Generation workers are restarted by Ray (``max_restarts``) after a crash or a lost node, and Ray
restarts an actor by re-running its constructor with the original arguments. Arguments that are
object-store references (an ``ObjectRef``, and also every actor handle, which carries one) are
not kept alive for that re-run: Ray warns "constructor arguments in the object store and
max_restarts > 0", and ray-project/ray#53727 shows a restart failing once they are evicted.
So workers get only plain values: the name of one ``JobDirectory`` actor per run, created by
the driver on its own node without restarts, which holds the handles of the run's metrics,
limiter and teacher-replica actors and the decontamination index (a
reference the driver owns). A worker, first start or restart, asks it for them with
``JobActors.lookup``; handles and references that come back as a method's *result* are
borrowed the normal way.

What it does NOT do: create, restart or kill the actors it lists (the engine does), or outlive
the driver (nothing of a run does).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import ray

from orchestrator.telemetry.metrics import NAMESPACE

__all__ = ["JobActors", "JobDirectory", "start_directory"]


@dataclass
class JobActors:
    """Handles a worker needs (``index_ref``: ``[ObjectRef]`` of the n-gram index, or None)."""

    metrics: Any
    index_ref: list[Any] | None = None
    limiter: Any = None
    teacher_pool: Any = None

    @staticmethod
    def lookup(directory_name: str) -> JobActors:
        """The handles listed by the run's directory (from a worker, also after a restart)."""
        directory = ray.get_actor(directory_name, namespace=NAMESPACE)
        return JobActors(**ray.get(directory.actors.remote()))

    def index(self) -> Any:
        """The decontamination index, fetched from the object store (None if disabled)."""
        return ray.get(self.index_ref[0]) if self.index_ref else None


@ray.remote(num_cpus=0, max_restarts=0)
class JobDirectory:
    def __init__(self, actors: dict[str, Any]) -> None:
        self._actors = actors

    def actors(self) -> dict[str, Any]:
        return self._actors


def start_directory(actors: JobActors, options: dict[str, Any]) -> tuple[Any, str]:
    """Create this run's directory (with ``options``, e.g. pinned to the driver's node);
    returns its handle (keep it for the run) and its name (give that to workers)."""
    name = f"mathsynth-job-{uuid.uuid4().hex[:12]}"
    listed = dict(vars(actors))
    handle = JobDirectory.options(name=name, namespace=NAMESPACE, **options).remote(listed)
    return handle, name
