"""Compact storage for LSH band buckets: uint64 band key → member id, in numpy.

``BandTable`` is an open-addressing hash table (linear probing, load ≤ 1/2) with every
operation vectorised over a batch of keys; a slot costs 12 bytes (key + int32 member index),
so an entry costs ~24-48 bytes, against ~100+ for a Python dict of ints. ``IdPool`` stores the
member ids as one fixed-width bytes array (as wide as the longest id seen; 16 bytes for this
project's content hashes), so holders can be compared with callers' ids without Python loops.

Entries are never removed (a dropped row never inserts its keys), so memory follows the rows
admitted.
Key 0 is reserved for empty slots (``minhash.band_keys`` never yields it). This module has no
notion of bands, records or Ray: ``near_dedup.NearIndex`` gives the entries their meaning.
"""

from __future__ import annotations

import numpy as np

ABSENT = -1


class IdPool:
    """Append-only ids (as UTF-8 bytes) in one fixed-width numpy array."""

    def __init__(self, capacity: int = 1024) -> None:
        self.ids = np.zeros(capacity, dtype="S16")
        self.size = 0

    def add(self, ids: np.ndarray) -> np.ndarray:
        """Append ``ids`` (a bytes array); returns their indices."""
        if ids.dtype.itemsize > self.ids.dtype.itemsize:
            self.ids = self.ids.astype(ids.dtype)
        need = self.size + len(ids)
        if need > len(self.ids):
            grown = np.zeros(max(need, 2 * len(self.ids)), dtype=self.ids.dtype)
            grown[: self.size] = self.ids[: self.size]
            self.ids = grown
        self.ids[self.size : need] = ids
        out = np.arange(self.size, need, dtype=np.int32)
        self.size = need
        return out

    def nbytes(self) -> int:
        return int(self.ids.nbytes)


def encode_ids(ids: list[str]) -> np.ndarray:
    return np.array([i.encode("utf-8") for i in ids], dtype=bytes)


class BandTable:
    """uint64 key → int32 member index, with member ids in an ``IdPool``."""

    def __init__(self, capacity: int = 1 << 12) -> None:
        self._alloc(capacity)
        self.pool = IdPool()
        self.live = 0

    def _alloc(self, capacity: int) -> None:
        self.keys = np.zeros(capacity, dtype=np.uint64)
        self.vals = np.full(capacity, ABSENT, dtype=np.int32)
        self.mask = np.uint64(capacity - 1)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Slot of each key, or -1 where the key is not in the table."""
        pos = (keys & self.mask).astype(np.int64)
        found = np.full(len(keys), -1, dtype=np.int64)
        todo = np.arange(len(keys))
        while todo.size:
            p = pos[todo]
            k = self.keys[p]
            hit = k == keys[todo]
            found[todo[hit]] = p[hit]
            more = ~hit & (k != 0)
            todo = todo[more]
            pos[todo] = (p[more] + 1) & int(self.mask)
        return found

    def holders(self, keys: np.ndarray) -> np.ndarray:
        """The member index holding each key, or ``ABSENT``."""
        slots = self.find(keys)
        return np.where(slots >= 0, self.vals[np.maximum(slots, 0)], ABSENT)

    def put(self, keys: np.ndarray, ids: np.ndarray) -> None:
        """Store ``keys[i] → ids[i]`` for keys not in the table (distinct)."""
        self._grow(len(keys))
        uniq, inverse = np.unique(ids, return_inverse=True)  # each distinct id pooled once
        self._place(keys, self.pool.add(uniq)[inverse])

    def _place(self, keys: np.ndarray, members: np.ndarray) -> None:
        pos = (keys & self.mask).astype(np.int64)
        todo = np.arange(len(keys))
        while todo.size:
            p = pos[todo]
            free = self.keys[p] == 0
            cand, cpos = todo[free], p[free]
            _, first = np.unique(cpos, return_index=True)
            win = cand[first]
            self.keys[cpos[first]] = keys[win]
            self.vals[cpos[first]] = members[win]
            placed = np.zeros(len(keys), dtype=bool)
            placed[win] = True
            todo = todo[~placed[todo]]
            pos[todo] = (pos[todo] + 1) & int(self.mask)
        self.live += len(keys)

    def _grow(self, incoming: int) -> None:
        """Rebuild at twice the size (or more) before the load would pass 1/2."""
        if 2 * (self.live + incoming) <= len(self.keys):
            return
        capacity = len(self.keys)
        while 3 * (self.live + incoming) > capacity:
            capacity *= 2
        used = self.vals >= 0
        keys, members = self.keys[used], self.vals[used]
        self._alloc(capacity)
        self.live = 0
        self._place(keys, members)

    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.vals.nbytes) + self.pool.nbytes()
