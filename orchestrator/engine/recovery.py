"""What the driver re-runs after a generation worker dies (process killed, node lost).

A chunk sent to a worker that died is handed out again, minus the seeds that already have an
outcome on storage: a worker can die after its candidate commit's atomic rename but before its
reply reaches the driver, and re-running those seeds would cost a teacher request each again.
Commits are atomic and every commit's footer names its seeds (``orchestrator.output.store``),
so the ledger is the truth; it is read only when a worker died, and the candidate commits the
driver never got a reply for are read back and handed to the finalizer.

A failure *inside* a live worker's task whose cause is a dead actor (a job-state actor the
worker called) is not a worker death: retrying cannot help, so it is not requeued here.

``WorkerHealth`` keeps chunks away from a worker while Ray restarts it (``max_restarts``), and
for good once it cannot come back. This module does not restart actors or order chunks.
"""

from __future__ import annotations

import time
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from orchestrator.engine.finalize import Finalizer
from orchestrator.output.store import OutputStore


def worker_died(err: BaseException) -> bool:
    """True if ``err`` (from ``ray.get`` of a worker task) means the worker itself died."""
    return isinstance(err, RayActorError) and not isinstance(err, RayTaskError)


def recover(
    chunk: list[dict[str, Any]], store: OutputStore, finalizer: Finalizer
) -> list[dict[str, Any]]:
    """Seeds of ``chunk`` that the dead worker did not commit, to run again; its candidate
    commits covering the others go to ``finalizer``. Commits the finalizer already knows (an
    earlier run's, e.g. a failed attempt of a seed retried now) are not this chunk's."""
    ledger = store.read_ledger(with_questions=False)
    ids = {seed["id"] for seed in chunk}
    committed: set[str] = set()
    for cid, seeds in ledger.candidates.items():
        if ids & seeds.keys() and not finalizer.known(cid):
            finalizer.add(cid, seeds, store.candidate_rows(cid), ledger.failures)
            committed |= ids & seeds.keys()
    return [seed for seed in chunk if seed["id"] not in committed]


class WorkerHealth:
    """Workers that died are given no chunk until Ray has restarted them (they answer a ping);
    one that cannot come back (restarts used up) is never used again, so the job finishes on
    the workers that are alive instead of waiting on it. A ping sent just after a death can
    still reach the dead process and fail, so a failed ping is repeated (``PING_TRIES`` times,
    ``PING_RETRY_S`` apart) before the worker counts as lost; a ping to a worker Ray cannot
    place yet simply waits, and the worker stays unused meanwhile."""

    PING_TRIES = 3
    PING_RETRY_S = 0.5

    def __init__(self, workers: list[Any]) -> None:
        self.workers = workers
        self.pings: dict[Any, int] = {}  # ping ref -> worker index
        self.retry_at: dict[int, float] = {}  # worker index -> when to ping again
        self.failed: dict[int, int] = {}  # worker index -> failed pings in a row
        self.lost: set[int] = set()
        self.deaths: dict[int, int] = {}  # worker index -> deaths seen = its incarnation

    def _down(self) -> set[int]:
        return set(self.states())

    def incarnation(self, i: int) -> int:
        """Worker ``i``'s incarnation as far as the driver knows (deaths seen so far): tag each
        task sent to it with this, for ``died``."""
        return self.deaths.get(i, 0)

    def died(self, i: int, incarnation: int) -> None:
        """A task sent to ``incarnation`` of worker ``i`` failed because its process died. Its
        other tasks fail too, some only after Ray restarted it: a failure of an incarnation
        already counted is the same death (no second count, no second ping)."""
        if incarnation < self.incarnation(i) or i in self._down():
            return
        self.deaths[i] = incarnation + 1
        self.failed[i] = 0
        self.pings[self.workers[i].ping.remote()] = i

    def usable(self) -> list[int]:
        """Indices of workers to give chunks to now."""
        now = time.monotonic()
        for i, when in list(self.retry_at.items()):
            if when <= now:
                del self.retry_at[i]
                self.pings[self.workers[i].ping.remote()] = i
        if self.pings:
            ready, _ = ray.wait(list(self.pings), num_returns=len(self.pings), timeout=0)
            for ref in ready:
                i = self.pings.pop(ref)
                try:
                    ray.get(ref)
                except RayActorError:
                    self.failed[i] += 1
                    if self.failed[i] >= self.PING_TRIES:
                        self.lost.add(i)
                    else:
                        self.retry_at[i] = now + self.PING_RETRY_S
        down = self._down()
        return [i for i in range(len(self.workers)) if i not in down]

    def states(self) -> dict[int, str]:
        """What the driver knows of its down workers: ``restarting`` (died, not answering
        yet) or ``dead`` (cannot come back). Workers not listed are in use."""
        down = {i: "restarting" for i in (*self.pings.values(), *self.retry_at)}
        return {**down, **dict.fromkeys(self.lost, "dead")}

    def all_lost(self) -> bool:
        return len(self.lost) == len(self.workers)
