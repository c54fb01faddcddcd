"""Where a row came from: the row itself, and the exact teacher replies behind it.

Every row keeps ``reply_ids``: the keys of the replies it was parsed from in the reply log
(``orchestrator.output.replies``). ``find_row`` finds a row of any split (dataset, dropped,
side split) by id; ``replies_of`` returns those logged replies (text, ``finish_reason``, token
usage, HTTP attempts, the model that served it), in the order the row used them. ``summary.json``
and ``_mathsynth/run.json`` hold the rest of the provenance: the resolved configuration,
fingerprints and mathsynth version of every run.

It reads; it never changes the output.
"""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc

from orchestrator.output.replies import ReplyIndex
from orchestrator.output.store import SIDE_SPLITS, OutputStore


def find_row(store: OutputStore, row_id: str) -> tuple[str, dict[str, Any]] | None:
    """``(split, row)`` of the row with ``row_id`` (dataset rows first), or None."""
    for split in ("data", "rejected", *SIDE_SPLITS):
        for file in store.files(split):
            table = store.read_table(file)
            hits = table.filter(pc.equal(table.column("id"), row_id))
            if hits.num_rows:
                return split, hits.slice(0, 1).to_pylist()[0]
    return None


def replies_of(store: OutputStore, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The logged replies behind ``row`` (a missing one, e.g. a cleared log, is skipped)."""
    ids = row.get("reply_ids") or []
    if not ids:
        return []
    index = ReplyIndex([store])
    index.scan()
    found = [index.find(key) for key in ids]
    return [reply for reply in found if reply is not None]
