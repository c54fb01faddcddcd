"""Augmentation planning: family/operation weights, reproducibility, backward questions."""

from __future__ import annotations

import asyncio
import math
from collections import Counter

from orchestrator.core.records import Record
from orchestrator.engine.context import StepContext
from orchestrator.methods.skywork.config import SkyworkConfig
from orchestrator.methods.skywork.steps import PlanAugmentations, stratified_choice
from orchestrator.telemetry.counters import Counters


def test_stratified_choice_gives_each_key_its_share() -> None:
    weights = [("a", 0.5), ("b", 0.3), ("c", 0.2)]
    for offset in (0.0, 0.37, 0.99):
        counts = Counter(stratified_choice(weights, 10, offset))
        assert counts == {"a": 5, "b": 3, "c": 2}
    for n in range(1, 8):
        counts = Counter(stratified_choice(weights, n, 0.5))
        for key, w in weights:
            assert math.floor(n * w) <= counts[key] <= math.ceil(n * w)


def seeds(n: int) -> list[Record]:
    return [
        Record.seed(
            f"Ann has {i} cats and {i + 3} dogs. How many pets does she have?",
            str(2 * i + 3),
            "test",
        )  # fmt: skip
        for i in range(n)
    ]


def test_plan_follows_the_weights_per_seed_and_overall() -> None:
    cfg = SkyworkConfig(problems_per_seed=5,
                        families={"metamath": 0.6, "evol_instruct": 0.2, "self_correction": 0.2})  # fmt: skip
    plan = PlanAugmentations(cfg)
    total: Counter[str] = Counter()
    for seed in seeds(200):
        slots = plan.assign(seed)
        families = Counter(f for f, _ in slots)
        assert families == {"metamath": 3, "evol_instruct": 1, "self_correction": 1}
        total.update(op for _, op in slots)
        assert plan.assign(seed) == slots  # reproducible
    # the four MetaMath operations share the 600 metamath slots equally (each within 1 per seed)
    for op in ("rephrase", "fobar", "self_verification", "answer_augmentation"):
        assert 100 <= total[op] <= 200
    assert sum(total[op] for op in ("rephrase", "fobar", "self_verification",
                                    "answer_augmentation")) == 600  # fmt: skip
    other = PlanAugmentations(cfg.model_copy(update={"seed": 1}))
    assert [other.assign(s) for s in seeds(50)] != [plan.assign(s) for s in seeds(50)]


def run_plan(cfg: SkyworkConfig, records: list[Record]) -> tuple[list[Record], StepContext]:
    ctx = StepContext(teacher=None, request_slots=asyncio.Semaphore(1),
                      executor=None, counters=Counters())  # type: ignore[arg-type]  # fmt: skip
    return asyncio.run(PlanAugmentations(cfg).arun(records, ctx)), ctx


def test_backward_records_carry_the_masked_value_as_gold() -> None:
    cfg = SkyworkConfig(problems_per_seed=8, families={"metamath": 1, "evol_instruct": 0,
                        "self_correction": 0}, metamath={"rephrase": 0, "fobar": 1,
                        "self_verification": 1, "answer_augmentation": 0})  # fmt: skip
    records, ctx = run_plan(cfg, seeds(3))
    assert len(records) == 24 and not ctx.rejected
    for r in records:
        assert r.method in ("skywork/metamath/fobar", "skywork/metamath/self_verification")
        assert r.meta["stage"] == 1 and r.meta["evol_depth"] == 0 and r.parent_id is None
        assert r.gold_answer == r.meta["masked_value"] and r.meta["unknown"] == "X"
        answer = r.meta["original_answer"]
        if r.meta["op"] == "fobar":
            body, tail = r.question.split("\nIf we know")
            assert (
                tail
                == f" the answer to the above question is {answer}, what is the value of unknown variable X?"
            )
        else:
            context, tail = r.question.split(" We know that the answer to the question ")
            asked = tail.split('"')[1]
            body = f"{context} {asked}"
            assert tail.endswith(f'" is {answer}. What is the value of unknown variable X?')
        assert any(body.replace("X", r.gold_answer) == s.question for s in seeds(3))
    assert len({r.id for r in records}) == 24


def test_plan_without_gold_drops_backward_slots_with_a_reason() -> None:
    cfg = SkyworkConfig(problems_per_seed=4, families={"metamath": 1, "evol_instruct": 0,
                        "self_correction": 0})  # fmt: skip
    no_gold = [Record.seed("Ann has 3 cats and 4 dogs. How many pets?", None, "t")]
    records, ctx = run_plan(cfg, no_gold)
    assert [r.meta["op"] for r in records] == ["rephrase"]  # a teacher task, kept
    assert sorted(r.reject_reason for r in ctx.rejected) == ["skywork_plan:no_gold"] * 3
