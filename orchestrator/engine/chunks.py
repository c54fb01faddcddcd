"""Cutting the seeds that need teacher work into chunks for the workers, in seed order.

A chunk is what the driver hands one generation worker at a time, and what that worker commits
at once (one candidate commit). Small chunks balance work and lose little to a crash; big
chunks cost fewer commits. ``ChunkFeed`` starts at ``run.commit_every_seeds`` seeds a chunk and
doubles the size while chunks come back faster than half of ``run.chunk_target_s`` (halving it
when one takes more than twice that), up to ``run.max_chunk_seeds``: against a slow hosted API
chunks stay small, against a fast local teacher a commit covers seconds of work, not 16 seeds.
A chunk whose worker died comes back (``requeue``) and is handed out first.

It does not choose workers or read storage.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from orchestrator.core.records import Record

Chunk = list[dict[str, Any]]


class ChunkFeed:
    def __init__(self, seeds: Iterable[Record], first: int, largest: int, target_s: float) -> None:
        self._seeds: Iterator[Record] = iter(seeds)
        self._head: Record | None = next(self._seeds, None)
        self._returned: deque[Chunk] = deque()
        self.size = max(1, first)
        self.smallest = self.size
        self.largest = max(self.size, largest)
        self.target_s = target_s
        self.handed = 0  # chunks handed out (requeued ones again)
        self.cut = 0  # seeds cut into chunks so far

    def __bool__(self) -> bool:
        return bool(self._returned) or self._head is not None

    def take(self) -> Chunk:
        """The next chunk (a requeued one first); call only while the feed is true."""
        self.handed += 1
        if self._returned:
            chunk = self._returned.popleft()
        else:
            chunk = []
            while self._head is not None and len(chunk) < self.size:
                chunk.append(self._head.to_dict())
                self._head = next(self._seeds, None)
            self.cut += len(chunk)
        return chunk

    def requeue(self, chunk: Chunk) -> None:
        if chunk:
            self._returned.appendleft(chunk)

    def queued(self, total: int) -> int:
        """Seeds not handed out yet, of ``total`` to hand out (given back ones included)."""
        return total - self.cut + sum(len(c) for c in self._returned)

    def finished(self, seconds: float) -> None:
        """A chunk of the current size came back after ``seconds``: adapt the size."""
        if seconds < self.target_s / 2:
            self.size = min(self.largest, self.size * 2)
        elif seconds > self.target_s * 2:
            self.size = max(self.smallest, self.size // 2)
