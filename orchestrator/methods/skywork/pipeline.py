"""Skywork-Math as engine steps.

seed -> ``PlanAugmentations`` (slots by family/operation weights; FOBAR, self-verification and
answer augmentation built by program) -> ``Route``: rephrase (one teacher call), evol-instruct
(``EvolveChain``: up to ``evol_steps`` calls, each round's question is the next one's input),
self-correction (one call) -> question filters -> ``Solve`` (one chain-of-thought call per
question, checked against the gold answer when one is known). Stage 2 (``skywork.stage: 2``)
renders the question templates with ``hard=true`` and leaves out the same-difficulty evolution;
its seeds are written by ``python -m orchestrator.methods.skywork.coreset`` from a stage-1 output.
Dedup and writing are the worker's, after these steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.core.sampling import SamplingParams
from orchestrator.core.stage import Stage
from orchestrator.engine.steps import FilterStep, Step, TeacherStep
from orchestrator.methods.method import Method
from orchestrator.methods.skywork.config import SkyworkConfig
from orchestrator.methods.skywork.stages import Evolve, Rephrase, SelfCorrect, Solve
from orchestrator.methods.skywork.steps import EvolveChain, PlanAugmentations, Route
from orchestrator.quality.filters import QuestionHasNumber, QuestionLength

if TYPE_CHECKING:
    from orchestrator.core.config import PipelineConfig


def template_names(cfg: PipelineConfig) -> list[str]:
    t = cfg.skywork.templates
    return [t.rephrase, t.evol_instruct, t.self_correction, t.solve]


def question_filters(cfg: PipelineConfig) -> FilterStep:
    stages: list[Stage] = [QuestionLength(cfg.filters.min_question_words)]
    if cfg.filters.require_number_in_question:
        stages.append(QuestionHasNumber())
    return FilterStep(stages)


def build_steps(cfg: PipelineConfig) -> list[Step]:
    s = cfg.skywork
    hard = s.stage == 2
    rephrase = Rephrase(
        cfg.template(s.templates.rephrase), s.sampling, "skywork/metamath/rephrase", hard
    )
    evolve = Evolve(
        cfg.template(s.templates.evol_instruct), s.sampling, "skywork/evol_instruct", hard,
        s.moves_for_stage(), s.seed,
    )  # fmt: skip
    self_correct = SelfCorrect(
        cfg.template(s.templates.self_correction), s.sampling, "skywork/self_correction", hard
    )
    route = Route(
        {
            "rephrase": TeacherStep([rephrase]),
            "evol_instruct": EvolveChain(evolve, s.evol_steps),
            "self_correction": TeacherStep([self_correct]),
        }
    )
    solve = Solve(cfg.template(s.templates.solve), s.solve_sampling, s.check_gold)
    return [PlanAugmentations(s), route, question_filters(cfg), TeacherStep([solve])]


def request_plan(cfg: PipelineConfig) -> list[tuple[float, SamplingParams]]:
    """Teacher requests per seed (expected by the weights; every evolution succeeding)."""
    s = cfg.skywork
    shares = dict(s.families.items())
    total = sum(shares.values())
    n = s.problems_per_seed
    meta = n * shares.get("metamath", 0) / total
    rephrase = (
        meta * dict(s.metamath.items()).get("rephrase", 0) / sum(w for _, w in s.metamath.items())
    )
    evol = n * shares.get("evol_instruct", 0) / total * s.evol_steps
    self_correct = n * shares.get("self_correction", 0) / total
    questions = rephrase + evol + self_correct
    return [(questions, s.sampling), (meta + evol + self_correct, s.solve_sampling)]


METHOD = Method(
    name="skywork",
    build_steps=build_steps,
    config=SkyworkConfig,
    template_names=template_names,
    request_plan=request_plan,
    meta={
        "stage": int,
        "family": str,
        "op": str,
        "slot": int,
        "evol_depth": int,
        "evol_moves": list[str],
        "draft_question": str,
        "unknown": str,
        "masked_value": str,
        "original_answer": str,  # FOBAR / SV
        "solution_template": str,
        "solution_template_hash": str,
        "solution_sampling": SamplingParams,
    },  # fmt: skip
)
