"""Seeds rejected only because the teacher's replies were cut by ``max_tokens``.

A reply cut by ``max_tokens`` that ``teacher.on_length`` does not keep (``reject``, or
``retry`` once the budget reached ``length_max_tokens``) drops its record with reason
``<stage>:length`` (``orchestrator.engine.steps``). A seed whose records all went that way is
``rejected`` like any other, and final: a resumed run does not ask again, because the same
prompt at the same budget is cut again (and paid for again). After raising the budget
(``teacher.length_max_tokens``, or the stage's ``max_tokens``), ``mathsynth run
--retry-length-rejected`` asks again for exactly these seeds: ``length_rejected(store,
outcomes)`` finds them from the stored rejections, by reason code.

A seed counts when the ledger says ``rejected`` and every record of it in ``rejected/`` has a
``:length`` reason (a seed with any other kind of drop, or an accepted row, does not). Its old
rejected rows stay in ``rejected/`` as history; the new outcome is committed as usual.

What it does NOT do: change budgets, or see length ends that leave no stored record (a
MuMath-Code tool-loop sample ending as ``length`` is only counted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.output.store import OutputStore

__all__ = ["LENGTH_REASON", "length_rejected"]

LENGTH_REASON = "length"  # the reason part of "<stage>:length"


def length_rejected(store: OutputStore, outcomes: dict[str, str]) -> set[str]:
    """Ids of the seeds that are ``rejected`` in ``outcomes`` with only length drops."""
    only_length: dict[str, bool] = {}
    for file in store.files("rejected"):
        table = store.read_table(file, columns=["id", "seed_id", "reject_reason"])
        rows = zip(
            table.column("id").to_pylist(),
            table.column("seed_id").to_pylist(),
            table.column("reject_reason").to_pylist(),
            strict=True,
        )
        for row_id, seed_id, reason in rows:
            seed = seed_id or row_id  # a seed record dropped itself has no seed_id
            is_length = (reason or "").rpartition(":")[2] == LENGTH_REASON
            only_length[seed] = only_length.get(seed, True) and is_length
    return {s for s, only in only_length.items() if only and outcomes.get(s) == "rejected"}
