"""The filter funnel: per-stage counts in, out and dropped by reason, from a run's counters.

Rows come in the order the counters first saw each stage (the order records reach them),
with the stages that *produce* items (teacher stages: ``produced``) first, then filters, then
dedup and near-dedup, and last ``written``. A group of consecutive filters sharing one name
counts as one row (``orchestrator.core.stage.run_chain``).

``written`` is not a filter: its number is the rows *committed* (``writer/rows``, counted
after a commit is durable), with the rows accepted by every filter but still waiting to be
committed as their own number (the workers' ``pending_commit`` gauge), never as a drop or an
accept rate. This module renders nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.telemetry.counters import Counters

NOT_STAGES = ("teacher", "seeds", "writer", "teacher_replicas", "seed_failures")


@dataclass
class FunnelRow:
    stage: str
    seen: int
    out: int
    drops: dict[str, int] = field(default_factory=dict)
    produces: bool = False  # a teacher stage: ``out`` is items made, not records kept

    @property
    def rate(self) -> str:
        """``x3.0`` (items per input) for a producing stage, ``67%`` kept for a filter."""
        if not self.seen:
            return "-"
        return f"x{self.out / self.seen:.1f}" if self.produces else f"{self.out / self.seen:.0%}"

    def reasons(self) -> str:
        """``runtime_error 6, timeout 4``: drops by reason, most first."""
        ranked = sorted(self.drops.items(), key=lambda kv: (-kv[1], kv[0]))
        return ", ".join(f"{reason} {n}" for reason, n in ranked)


@dataclass
class Written:
    committed: int  # rows durable in data/
    pending: int  # accepted rows waiting to be committed


def funnel_rows(counters: Counters) -> list[FunnelRow]:
    """Every stage's row, in funnel order (module doc); ``written`` is not among them."""
    producing, filtering, dedups = [], [], []
    for group, names in counters.as_dict().items():
        counted = {"seen", "produced", "kept"} & names.keys()
        if group in NOT_STAGES or not (counted or any(n.startswith("dropped:") for n in names)):
            continue
        drops = {
            n.removeprefix("dropped:"): int(v) for n, v in names.items() if n.startswith("dropped:")
        }
        produces = "produced" in names
        out = names.get("produced", 0) if produces else names.get("kept", 0)
        row = FunnelRow(group, int(names.get("seen", 0)), int(out), drops, produces)
        if produces:
            producing.append(row)
        elif group in ("dedup", "near_dedup"):
            dedups.append(row)
        else:
            filtering.append(row)
    return producing + filtering + sorted(dedups, key=lambda r: r.stage != "dedup")


def written(counters: Counters, gauges: dict[str, object]) -> Written:
    pending = gauges.get("pending_commit", 0)
    return Written(
        int(counters.get("writer", "rows")),
        int(pending) if isinstance(pending, (int, float)) else 0,
    )
