"""Cluster-wide exact dedup on normalised question text.

Keys (hashes of ``normalize_question``) are partitioned over ``ExactDedup`` Ray actors by hash,
so every worker asks the same owner about the same key and the decision does not depend on
which shard a row came from. ``admit`` is idempotent per record id: a worker that is restarted
and redoes a seed gets its own keys back instead of losing them to itself. Keys from previous
runs (read from the output's committed shards) are preloaded, so dedup holds across resumes.
Near-duplicate (MinHash) removal is a separate stage; this module does only exact matches.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence

import ray

from orchestrator.core.records import Record, content_hash, normalize_question


def question_key(question: str) -> str:
    return content_hash("q", normalize_question(question), length=32)


@ray.remote(num_cpus=0)
class ExactDedup:
    def __init__(self) -> None:
        self.owner: dict[str, str] = {}  # admitted in this run: key -> record id
        self.earlier: dict[str, str] = {}  # written before: key -> row id

    def preload(self, items: list[tuple[str, str]]) -> int:
        """Keys of rows written before (earlier runs, other datasets), with their ids. These
        always win, even against a record with the same id: that row is already written."""
        for key, record_id in items:
            self.earlier.setdefault(key, record_id)
        return len(self.earlier)

    def admit(self, items: list[tuple[str, str]]) -> list[str | None]:
        """For each (key, record_id): None if admitted, else the id that already holds it."""
        out: list[str | None] = []
        for key, record_id in items:
            if key in self.earlier:
                out.append(self.earlier[key])
                continue
            holder = self.owner.setdefault(key, record_id)
            out.append(None if holder == record_id else holder)
        return out

    def size(self) -> int:
        return len(self.owner) + len(self.earlier)


class DedupClient:
    """Routes keys to their owning ``ExactDedup`` actor; one call per actor per batch."""

    def __init__(self, actors: Sequence[ray.actor.ActorHandle]) -> None:
        self.actors = list(actors)

    def _owner(self, key: str) -> int:
        return int(key[:8], 16) % len(self.actors)

    def _partition(self, items: Iterable[tuple[str, str]]) -> dict[int, list[tuple[int, str, str]]]:
        parts: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
        for i, (key, rid) in enumerate(items):
            parts[self._owner(key)].append((i, key, rid))
        return parts

    async def admit(self, records: list[Record]) -> list[str | None]:
        items = [(question_key(r.question), r.id) for r in records]
        parts = self._partition(items)
        refs = {a: self.actors[a].admit.remote([(k, r) for _, k, r in p]) for a, p in parts.items()}
        answers = dict(zip(refs, await asyncio.gather(*refs.values()), strict=True))
        out: list[str | None] = [None] * len(items)
        for actor, part in parts.items():
            for (i, _, _), verdict in zip(part, answers[actor], strict=True):
                out[i] = verdict
        return out

    def preload(self, questions: Iterable[tuple[str, str]]) -> None:
        """``(question, row id)`` pairs already written; a new duplicate names that id."""
        keys: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for question, record_id in questions:
            key = question_key(question)
            keys[self._owner(key)].append((key, record_id))
        ray.get([self.actors[a].preload.remote(k) for a, k in keys.items()])
