"""Skywork's non-teacher steps: plan a seed's augmentations, route them, chain evolutions.

- ``PlanAugmentations`` turns a seed into ``problems_per_seed`` slots, each assigned an
  augmentation family and operation by the configured weights (stratified per seed, so every
  seed gets its share within one slot, drawn reproducibly from the seed id and ``seed``).
  Backward questions (FOBAR, self-verification) and answer augmentation are built here by
  program; the other operations become task records for teacher stages.
- ``Route`` sends each record to the step for its ``meta["op"]`` (others pass through).
- ``EvolveChain`` applies one evolution stage up to ``evol_steps`` times, each round's
  questions being the next round's input; every round's output is kept.

This module does not call the teacher itself (the stages it is given do) and does not solve.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from orchestrator.core.records import Record, content_hash
from orchestrator.engine.steps import Rejects, Step, StepContext, TeacherStage, TeacherStep, now_iso
from orchestrator.methods.skywork.backward import (
    fobar_question,
    mask_number,
    self_verification_question,
)
from orchestrator.methods.skywork.config import SkyworkConfig

PROGRAMMATIC_OPS = ("fobar", "self_verification", "answer_augmentation")


def stratified_choice(weights: Sequence[tuple[str, float]], n: int, offset: float) -> list[str]:
    """``n`` picks from ``weights`` at the evenly spaced points ``(offset + i) / n`` of the
    cumulative distribution: each key gets ``n * share`` picks, rounded up or down."""
    total = sum(w for _, w in weights)
    picks = []
    for i in range(n):
        u, acc = (offset + i) / n * total, 0.0
        key = weights[-1][0]
        for name, w in weights:
            acc += w
            if u < acc:
                key = name
                break
        picks.append(key)
    return picks


def slot_rng(*parts: Any) -> random.Random:
    return random.Random(int(content_hash(*parts), 16))


class PlanAugmentations:
    """Seed -> one record per augmentation slot (see module docstring)."""

    name = "skywork_plan"

    def __init__(self, cfg: SkyworkConfig) -> None:
        self.cfg = cfg

    def assign(self, seed: Record) -> list[tuple[str, str]]:
        """(family, op) per slot for ``seed``."""
        cfg, n = self.cfg, self.cfg.problems_per_seed
        families = stratified_choice(
            cfg.families.items(), n, slot_rng(cfg.seed, seed.id, "families").random()
        )
        n_meta = families.count("metamath")
        ops = iter(
            stratified_choice(
                cfg.metamath.items(), n_meta, slot_rng(cfg.seed, seed.id, "metamath").random()
            )
        )
        return [(f, next(ops) if f == "metamath" else f) for f in families]

    async def arun(self, records: list[Record], ctx: StepContext) -> list[Record]:
        out: list[Record] = []
        for seed in records:
            for slot, (family, op) in enumerate(self.assign(seed)):
                meta = {"stage": self.cfg.stage, "family": family, "op": op, "slot": slot}
                ctx.counters.add(self.name, f"planned:{op}")
                task = Record(
                    id=content_hash(seed.id, "skywork-task", slot),
                    question=seed.question, seed_id=seed.id, source=seed.source,
                    gold_answer=seed.gold_answer, meta=meta,
                )  # fmt: skip
                if op not in PROGRAMMATIC_OPS:
                    out.append(task)
                    continue
                built = self.programmatic(seed, task, slot, Rejects(self.name, ctx))
                if built is not None:
                    out.append(built)
        return out

    def programmatic(
        self, seed: Record, task: Record, slot: int, rejects: Rejects
    ) -> Record | None:
        """The FOBAR / SV / answer-augmentation question record, or None (dropped)."""
        op, meta = task.meta["op"], dict(task.meta)
        if seed.gold_answer is None:
            rejects.drop(task, "no_gold", f"{op} needs the seed's gold answer")
            return None
        question, gold = seed.question, seed.gold_answer
        if op != "answer_augmentation":
            masked = mask_number(seed.question, slot_rng(self.cfg.seed, seed.id, slot, "mask"))
            if masked is None:
                rejects.drop(task, "no_maskable_number")
                return None
            if op == "fobar":
                question = fobar_question(masked, seed.gold_answer)
            else:
                sv = self_verification_question(masked, seed.gold_answer)
                if sv is None:
                    rejects.drop(task, "no_question_sentence")
                    return None
                question = sv
            gold = masked.value
            meta.update(unknown=masked.name, masked_value=masked.value,
                        original_answer=seed.gold_answer)  # fmt: skip
        meta["evol_depth"] = 0
        method = f"skywork/metamath/{op}"
        return Record(
            id=content_hash(seed.id, method, question, slot), question=question,
            seed_id=seed.id, method=method, source=seed.source, gold_answer=gold,
            template="", created_at=now_iso(), meta=meta,
        )  # fmt: skip


class Route:
    """Send records to ``branches[key(record)]`` (concurrently); unrouted records pass."""

    def __init__(
        self,
        branches: Mapping[str, Step],
        key: Callable[[Record], Any] = lambda r: r.meta.get("op"),
    ) -> None:
        self.branches = dict(branches)
        self.key = key

    async def arun(self, records: list[Record], ctx: StepContext) -> list[Record]:
        groups: dict[str, list[Record]] = {}
        passed: list[Record] = []
        for record in records:
            key = self.key(record)
            (groups.setdefault(key, []) if key in self.branches else passed).append(record)
        results = await asyncio.gather(
            *(self.branches[key].arun(group, ctx) for key, group in groups.items())
        )
        return passed + [r for result in results for r in result]


class EvolveChain:
    """Up to ``steps`` rounds of ``stage``; round d's outputs feed round d+1 (all are kept)."""

    def __init__(self, stage: TeacherStage, steps: int) -> None:
        self.step = TeacherStep([stage])
        self.steps = steps

    async def arun(self, records: list[Record], ctx: StepContext) -> list[Record]:
        out: list[Record] = []
        current = records
        for _ in range(self.steps):
            current = await self.step.arun(current, ctx)
            out.extend(current)
            if not current:
                break
        return out
