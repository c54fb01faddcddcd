"""Counters: the one place numbers about a run live (seen/kept/dropped-by-reason per stage,
requests, tokens, errors). Stages increment them; only the progress display renders them.

A ``Counters`` is a plain nested mapping ``{group: {name: number}}`` that can be merged, so
actors send deltas in batches and the driver sums them. A counter starts at integer 0, so counts
(``add(group, name)``, ``add(group, name, n)`` with integer ``n``) stay integers end to end (the
``--json`` events print ``18``, not ``18.0``); a measurement added as a float (a name ending in
``_seconds``, by convention) stays a float. It does not render or store anything.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping


class Counters:
    def __init__(self, data: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self._data: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(int))
        if data:
            self.merge(data)

    def add(self, group: str, name: str, value: float = 1) -> None:
        self._data[group][name] += value

    def discard(self, group: str, name: str) -> None:
        """Forget one counter (no error if it was never counted)."""
        self._data.get(group, {}).pop(name, None)

    def get(self, group: str, name: str, default: float = 0) -> float:
        return self._data.get(group, {}).get(name, default)

    def group(self, group: str) -> dict[str, float]:
        return dict(self._data.get(group, {}))

    def merge(self, other: Mapping[str, Mapping[str, float]] | Counters) -> None:
        items = other.as_dict() if isinstance(other, Counters) else other
        for g, names in items.items():
            for n, v in names.items():
                self._data[g][n] += v

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {g: dict(names) for g, names in self._data.items()}

    def take(self) -> dict[str, dict[str, float]]:
        """Return the counts and reset to zero (for sending deltas)."""
        out = self.as_dict()
        self._data.clear()
        return out

    def __bool__(self) -> bool:
        return any(self._data.values())


def dropped_by_reason(counters: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """``{"stage:reason": n}`` for every ``dropped:<reason>`` counter of every group."""
    return {
        f"{group}:{name.removeprefix('dropped:')}": value
        for group, names in counters.items()
        for name, value in names.items()
        if name.startswith("dropped:")
    }


def subtract(
    current: Mapping[str, Mapping[str, float]], previous: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    """``current - previous`` per (group, name), keeping only non-zero differences."""
    out: dict[str, dict[str, float]] = {}
    for group, names in current.items():
        before = previous.get(group, {})
        diff = {n: v - before.get(n, 0) for n, v in names.items() if v != before.get(n, 0)}
        if diff:
            out[group] = diff
    return out
