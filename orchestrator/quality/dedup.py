"""Exact dedup on normalised question text: one index, asked in a fixed order.

``ExactIndex`` maps the hash of ``normalize_question`` to the id of the row that holds it. It
lives in the driver's finalizer (``orchestrator.engine.finalize``), which asks it about rows in
seed order, so which of two equal rows is kept never depends on which worker finished first:
the row of the earlier seed (or the earlier row of one seed) wins, and every other copy is
dropped naming it. Two rows with the same id are the same text twice (ids are content hashes),
so the second one is a duplicate too: a teacher that repeats a problem inside one reply gets it
written once. Rows already in the output (earlier runs) and in ``dedup.against`` datasets are
loaded first and always win.

Near-duplicate (MinHash) removal is ``orchestrator.quality.near_dedup``; this module does only
exact matches, holds no Ray actor and writes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from orchestrator.core.records import content_hash, normalize_question


def question_key(question: str) -> str:
    return content_hash("q", normalize_question(question), length=32)


def _digest(question: str) -> bytes:
    """16 bytes per key in memory (a hex string would take ~80)."""
    return hashlib.blake2b(normalize_question(question).encode(), digest_size=16).digest()


class ExactIndex:
    """Normalised question -> id of the row holding it."""

    def __init__(self) -> None:
        self._holder: dict[bytes, str] = {}

    def __len__(self) -> int:
        return len(self._holder)

    def preload(self, rows: Iterable[tuple[str, str]]) -> None:
        """``(question, row id)`` of rows written before; the first holder of a key stays."""
        for question, row_id in rows:
            self._holder.setdefault(_digest(question), row_id)

    def admit(self, question: str, row_id: str) -> str | None:
        """None if ``question`` is new (it is now held by ``row_id``), else the holder's id."""
        key = _digest(question)
        holder = self._holder.get(key)
        if holder is None:
            self._holder[key] = row_id
        return holder
