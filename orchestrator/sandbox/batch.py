"""``BatchingExecutor``: the program batches of many concurrent callers (seeds) on one sandbox.

Each caller hands over a batch (the programs of one seed's step) and gets back exactly its own
results, in order; across all callers at most ``slots`` programs run at once. Every program runs
on its own in the sandbox (on the warm pool: a fork of a warm runner, with a uid, pid namespace
and work dir no other live program has), so a hostile program cannot change a batch-mate's
result or cost. Cancelling a caller kills its programs only. ``BatchingExecutor.load`` says
how busy the executor is (programs queued and running, slot-seconds used) for the dashboard.
This module does not judge outputs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .result import ExecResult
from .runner import Sandbox


class BatchingExecutor:
    """Runs callers' programs, at most ``slots`` at once (module docstring).

    ``load()``: programs ``queued`` (waiting for a slot) and ``running``, the number of
    ``slots``, and ``busy_s``, the slot-seconds used so far (its growth per second over
    ``slots`` is how busy they are).
    """

    def __init__(self, sandbox: Sandbox | Callable[[], Sandbox], slots: int = 2) -> None:
        """``sandbox``, or a function making it on the first program (a pipeline that runs
        no program never probes isolation or starts runners)."""
        self._sandbox = sandbox
        self.slots = asyncio.Semaphore(slots)
        self.n_slots = slots
        self.queued = 0
        self.running = 0
        self._busy_s = 0.0  # slot-seconds up to ``_mark``
        self._mark = time.monotonic()

    @property
    def sandbox(self) -> Sandbox:
        if not isinstance(self._sandbox, Sandbox):
            self._sandbox = self._sandbox()
        return self._sandbox

    def load(self) -> dict[str, float]:
        """What the executor is doing now (class doc)."""
        busy = self._busy_s + self.running * (time.monotonic() - self._mark)
        return {"queued": self.queued, "running": self.running, "slots": self.n_slots,
                "busy_s": round(busy, 3)}  # fmt: skip

    def _holding(self, delta: int) -> None:
        now = time.monotonic()
        self._busy_s += self.running * (now - self._mark)
        self._mark, self.running = now, self.running + delta

    async def run(self, programs: list[str]) -> list[ExecResult]:
        return list(await asyncio.gather(*(self._one(code) for code in programs)))

    async def _one(self, code: str) -> ExecResult:
        self.queued += 1
        try:
            await self.slots.acquire()
        finally:
            self.queued -= 1
        self._holding(+1)
        try:
            return await self.sandbox.run(code)
        finally:
            self._holding(-1)
            self.slots.release()
