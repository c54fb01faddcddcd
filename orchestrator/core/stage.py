"""Stage abstraction (datatrove-style): a stage is one small class whose ``run(records)`` is a
generator of records. Leaf stages override one hook:

- ``Filter.filter(record) -> reason | None``: keep the record, or drop it with a reason;
- ``Map.apply(record) -> record``: transform in place.

Rejected records are yielded nowhere downstream; they are appended to ``self.rejected`` (with
``reject_reason`` set) so the engine can count and store them. Consecutive stages of a chain
that share a ``name`` (TinyGSM's two question filters, the format filters) are one counter
group: ``run_chain`` keeps the ``seen`` of the first and the ``kept`` of the last, so the group
reads as one funnel row (in = records entering it, out = records leaving it). Async work (teacher calls,
sandbox runs) happens in the engine's worker, not here: a stage is synchronous and pure CPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from orchestrator.core.records import Record
from orchestrator.telemetry.counters import Counters


class Stage:
    name: str = "stage"

    def __init__(self) -> None:
        self.counters = Counters()
        self.rejected: list[Record] = []

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        raise NotImplementedError

    def drop(self, record: Record, reason: str, detail: str | None = None) -> None:
        self.counters.add(self.name, f"dropped:{reason}")
        self.rejected.append(record.reject(f"{self.name}:{reason}", detail))


class Filter(Stage):
    """Override ``filter``; return None to keep the record or a short reason to drop it."""

    def filter(self, record: Record) -> str | None:
        raise NotImplementedError

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            self.counters.add(self.name, "seen")
            reason = self.filter(record)
            if reason is None:
                self.counters.add(self.name, "kept")
                yield record
            else:
                self.drop(record, reason)


class Map(Stage):
    """Override ``apply``; it returns the (possibly modified) record."""

    def apply(self, record: Record) -> Record:
        raise NotImplementedError

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            self.counters.add(self.name, "seen")
            yield self.apply(record)


def run_chain(stages: Iterable[Stage], records: Iterable[Record]) -> list[Record]:
    """Run records through stages in order; returns the survivors. Counts of consecutive
    stages sharing a name are those of one stage (module doc)."""
    chain = list(stages)
    stream: Iterable[Record] = records
    for stage in chain:
        stream = stage.run(stream)
    kept = list(stream)
    for before, after in zip(chain, chain[1:], strict=False):
        if before.name == after.name:  # one counter group: in at its first, out at its last
            before.counters.discard(before.name, "kept")
            after.counters.discard(after.name, "seen")
    return kept
