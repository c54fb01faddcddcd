"""Accept rates per stage: the pipeline's stages in the order items pass them, and what entered
and left each, counted from the rows on disk.

``stage_levels(cfg)`` walks the steps a configuration builds (``methods.catalog.build_steps``)
and appends the checks every worker runs after them, in the worker's order (decontamination,
format filters, exact dedup, near dedup). Stages of one teacher step or of one route's
alternatives form one level (an item passes one of them); a ``Branch`` (the verifier split) is a
side line, listed apart. ``stage_rates`` then counts, for each level, the items that reached it
(rows kept + rows dropped at that level or a later one) and those it dropped. The figures are
exact for a linear pipeline (TinyGSM, arithmetic); items lost without a row (a reply that could
not be parsed at all) are not on disk and so not here; stages that drop rows but are not in the
walked order are returned apart, without a rate. This module reads no file and renders nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.core.config import PipelineConfig
from orchestrator.engine.steps import Branch, ExecuteStep, FilterStep, TeacherStep
from orchestrator.methods.catalog import build_steps


@dataclass(frozen=True)
class StageLevels:
    main: list[list[str]]  # stage names per level, in the order items pass them
    side: dict[str, list[str]]  # side split -> its stage names


def _levels(step: Any) -> list[list[str]]:
    if isinstance(step, FilterStep):
        return [[s.name] for s in step.stages]
    if isinstance(step, TeacherStep):
        return [[s.name for s in step.stages]]
    if isinstance(step, ExecuteStep):
        return [[step.stage.name]]
    branches = getattr(step, "branches", None)  # a route: each item takes one alternative
    if isinstance(branches, dict):
        names = [n for branch in branches.values() for lvl in _levels(branch) for n in lvl]
        return [list(dict.fromkeys(names))]
    inner = getattr(step, "step", None)  # a repeated step (an evolution chain)
    if inner is not None:
        return _levels(inner)
    name = getattr(step, "name", None)
    return [[name]] if isinstance(name, str) else []


def _merge_repeats(levels: list[list[str]]) -> list[list[str]]:
    """One level per stage name (two filters of one name, e.g. ``question_filter``, are one)."""
    out: list[list[str]] = []
    for level in levels:
        fresh = [n for n in level if not any(n in seen for seen in out)]
        if fresh:
            out.append(fresh)
    return out


def stage_levels(cfg: PipelineConfig) -> StageLevels:
    main: list[list[str]] = []
    side: dict[str, list[str]] = {}
    for step in build_steps(cfg):
        if isinstance(step, Branch):
            names = [n for s in step.steps for lvl in _levels(s) for n in lvl]
            side[step.split] = list(dict.fromkeys(names))
        else:
            main.extend(_levels(step))
    # after the method's steps, every worker runs these (engine/worker.py, _process_seed)
    if cfg.decontamination.enabled:
        main.append(["decontam"])
    main.extend([s.name] for s in cfg.format.build())
    if cfg.dedup.exact:
        main.append(["dedup"])
    if cfg.dedup.near.enabled:
        main.append(["near_dedup"])
    return StageLevels(_merge_repeats(main), side)


def stage_rates(
    dropped_by_stage: dict[str, dict[str, int]], rows_kept: int, levels: StageLevels
) -> dict[str, Any]:
    """``{"levels": [{stages, in, dropped, out, accept_rate, reasons}], "side": {split:
    {stage: dropped}}, "unplaced": {stage: dropped}}`` for the drops of ``funnel()``."""
    dropped = {stage: sum(r.values()) for stage, r in dropped_by_stage.items()}
    placed = {n for level in levels.main for n in level}
    side_names = {n: split for split, names in levels.side.items() for n in names}
    rows: list[dict[str, Any]] = []
    reaching = rows_kept
    for level in reversed(levels.main):
        lost = sum(dropped.get(n, 0) for n in level)
        reaching += lost
        reasons = {f"{n}:{why}": c for n in level for why, c in dropped_by_stage.get(n, {}).items()}
        rows.append({
            "stages": level, "in": reaching, "dropped": lost, "out": reaching - lost,
            "accept_rate": (reaching - lost) / reaching if reaching else None, "reasons": reasons,
        })  # fmt: skip
    side: dict[str, dict[str, int]] = {}
    unplaced: dict[str, int] = {}
    for stage, n in sorted(dropped.items()):
        if stage in placed:
            continue
        if stage in side_names:
            side.setdefault(side_names[stage], {})[stage] = n
        else:
            unplaced[stage] = n
    return {"levels": rows[::-1], "side": side, "unplaced": unplaced}
