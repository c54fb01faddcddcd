"""MuMath-Code as engine steps.

seed -> ``PlanQuestions`` (original and FOBAR questions by program, tasks for the rest) ->
``Route``: rephrase, expression replacement, harder variant, BF-Trans (one teacher call each)
-> question filters -> ``SampleSolutions`` (n tool-loop or chain-of-thought samples per
question; keep one that matches the gold answer or the majority). ``solution_format: code``
makes stage-2 data (code-nested), ``cot`` stage-1 data (pure chain of thought); run them into
two output directories. Dedup and writing are the worker's, after these steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.core.sampling import SamplingParams
from orchestrator.engine.steps import Step, TeacherStep
from orchestrator.methods.method import Method
from orchestrator.methods.mumath.config import MuMathConfig
from orchestrator.methods.skywork.pipeline import question_filters
from orchestrator.methods.skywork.steps import Route

from .solve import SampleSolutions
from .stages import BackwardForward, NewQuestion, PlanQuestions, Rephrase

if TYPE_CHECKING:
    from orchestrator.core.config import PipelineConfig


def template_names(cfg: PipelineConfig) -> list[str]:
    t = cfg.mumath_code.templates
    solve = t.solve_code if cfg.mumath_code.solution_format == "code" else t.solve_cot
    return [t.rephrase, t.alter_expression, t.alter_harder, t.bf_trans, solve]


def build_steps(cfg: PipelineConfig) -> list[Step]:
    m = cfg.mumath_code
    t = m.templates
    stages = {
        "rephrase": Rephrase(cfg.template(t.rephrase), m.sampling, "rephrase"),
        "alter_expression": NewQuestion(
            cfg.template(t.alter_expression), m.sampling, "alter_expression"
        ),
        "alter_harder": NewQuestion(cfg.template(t.alter_harder), m.sampling, "alter_harder"),
        "bf_trans": BackwardForward(cfg.template(t.bf_trans), m.sampling, "bf_trans"),
    }
    route = Route({op: TeacherStep([stage]) for op, stage in stages.items()})
    solve_template = cfg.template(template_names(cfg)[-1])
    solve = SampleSolutions(solve_template, m.solve_sampling, m)
    return [PlanQuestions(m), route, question_filters(cfg), solve]


def request_plan(cfg: PipelineConfig) -> list[tuple[float, SamplingParams]]:
    """Teacher requests per seed: one per teacher-written question, then every sample of every
    question at its largest number of turns (upper bound)."""
    m = cfg.mumath_code
    counts = m.augmentations.model_dump()
    written = sum(counts[op] for op in ("rephrase", "alter_expression", "alter_harder", "bf_trans"))
    questions = sum(counts.values())
    turns = 1 + (m.max_tool_calls if m.solution_format == "code" else 0)
    return [(written, m.sampling), (questions * m.samples_per_question * turns, m.solve_sampling)]


METHOD = Method(
    name="mumath_code",
    build_steps=build_steps,
    config=MuMathConfig,
    template_names=template_names,
    request_plan=request_plan,
    meta={
        "op": str,
        "slot": int,
        "unknown": str,
        "masked_value": str,
        "original_answer": str,
        "fobar_question": str,
        "solution_format": str,
        "pseudo_answer": bool,
        "samples": int,
        "agreeing_samples": int,
        "agreement": float,
        "sample_index": int,
        "n_tool_calls": int,
        "n_tool_errors": int,
        "solution_template": str,
        "solution_template_hash": str,
        "solution_sampling": SamplingParams,
    },  # fmt: skip
)
