"""``BatchingExecutor``: the program batches of many concurrent callers (seeds) on one sandbox.

Each caller hands over a batch (the programs of one seed's step) and gets back exactly its own
results, in order; across all callers at most ``slots`` programs run at once. Every program runs
on its own in the sandbox (on the warm pool: a fork of a warm runner, with a uid, pid namespace
and work dir no other live program has), so a hostile program cannot change a batch-mate's
result or cost. Cancelling a caller kills its programs only. This module does not judge
outputs.
"""

from __future__ import annotations

import asyncio

from .result import ExecResult
from .runner import Sandbox


class BatchingExecutor:
    def __init__(self, sandbox: Sandbox, slots: int = 2) -> None:
        self.sandbox = sandbox
        self.slots = asyncio.Semaphore(slots)

    async def run(self, programs: list[str]) -> list[ExecResult]:
        return list(await asyncio.gather(*(self._one(code) for code in programs)))

    async def _one(self, code: str) -> ExecResult:
        async with self.slots:
            return await self.sandbox.run(code)
