"""TinyGSM as engine steps: teacher stage(s), question filters, sandboxed execution.

One-step: seed -> n (question, program) pairs -> question filters -> program filter -> execute.
Two-step: seed -> n variants + n GSM-IC variants -> question filters -> one program per
question -> program filter -> execute. The program filter (``tinygsm.program_filter``, on by
default) also screens verifier candidates. Dedup and writing are the worker's, after these
steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.core.sampling import SamplingParams
from orchestrator.core.stage import Stage
from orchestrator.engine.steps import Branch, ExecuteStep, FilterStep, Step, TeacherStep
from orchestrator.methods.method import Method
from orchestrator.methods.tinygsm.config import TinyGSMConfig
from orchestrator.methods.tinygsm.execute import RunProgram
from orchestrator.methods.tinygsm.program_filter import ProgramFilter
from orchestrator.methods.tinygsm.stages import OneStep, TwoStepProgram, TwoStepQuestions
from orchestrator.methods.tinygsm.verifier import CandidateProgram, LabelCandidates
from orchestrator.quality.filters import QuestionHasNumber, QuestionLength

if TYPE_CHECKING:
    from orchestrator.core.config import PipelineConfig


def question_filters(cfg: PipelineConfig) -> FilterStep:
    stages: list[Stage] = [QuestionLength(cfg.filters.min_question_words)]
    if cfg.filters.require_number_in_question:
        stages.append(QuestionHasNumber())
    return FilterStep(stages)


def program_filters(cfg: PipelineConfig) -> list[Step]:
    """[FilterStep(ProgramFilter)] when ``tinygsm.program_filter`` is on, else []."""
    return [FilterStep([ProgramFilter()])] if cfg.tinygsm.program_filter else []


def template_names(cfg: PipelineConfig) -> list[str]:
    t = cfg.tinygsm.templates
    if cfg.tinygsm.method == "one-step":
        names = [t.one_step]
        return [*names, t.two_step_program] if cfg.tinygsm.verifier.enabled else names
    return [t.two_step_questions, t.two_step_gsm_ic, t.two_step_program]


def verifier_branch(cfg: PipelineConfig) -> list[Step]:
    """[Branch] writing labelled candidate programs of each seed to the verifier split."""
    v = cfg.tinygsm.verifier
    if not v.enabled:
        return []
    template = cfg.template(cfg.tinygsm.templates.two_step_program)
    candidates = [CandidateProgram(template, v.sampling, i) for i in range(v.samples)]
    label = LabelCandidates(v.pseudo_answer_threshold, cfg.filters.max_abs_answer)
    return [Branch([TeacherStep(candidates), *program_filters(cfg), label], "verifier")]


def build_steps(cfg: PipelineConfig) -> list[Step]:
    return verifier_branch(cfg) + generation_steps(cfg)


def generation_steps(cfg: PipelineConfig) -> list[Step]:
    t = cfg.tinygsm
    execute = ExecuteStep(RunProgram(cfg.filters.max_abs_answer))
    if t.method == "one-step":
        one_step = OneStep(cfg.template(t.templates.one_step), t.sampling, t.problems_per_seed)
        return [TeacherStep([one_step]), question_filters(cfg), *program_filters(cfg), execute]
    family_templates = {
        "variants": t.templates.two_step_questions,
        "gsm_ic": t.templates.two_step_gsm_ic,
    }
    questions = [
        TwoStepQuestions(cfg.template(family_templates[f]), t.sampling, t.problems_per_seed, f)
        for f in t.two_step_families
    ]
    program = TwoStepProgram(
        cfg.template(t.templates.two_step_program), t.program_sampling, "tinygsm/two-step"
    )
    return [
        TeacherStep(questions), question_filters(cfg), TeacherStep([program]),
        *program_filters(cfg), execute,
    ]  # fmt: skip


def request_plan(cfg: PipelineConfig) -> list[tuple[float, SamplingParams]]:
    """Teacher requests per seed (upper bounds) and their sampling, step by step."""
    t = cfg.tinygsm
    verifier = [(t.verifier.samples, t.verifier.sampling)] if t.verifier.enabled else []
    if t.method == "one-step":
        return [*verifier, (1, t.sampling)]
    families = len(t.two_step_families)
    return [
        *verifier,
        (families, t.sampling),
        (families * t.problems_per_seed, t.program_sampling),
    ]


METHOD = Method(
    name="tinygsm",
    build_steps=build_steps,
    config=TinyGSMConfig,
    template_names=template_names,
    request_plan=request_plan,
    meta={
        "program_template": str,  # two-step: the program prompt (the question's is `template`)
        "program_template_hash": str,
        "sample": int,  # verifier split: candidate index, its execution and its reference
        "execution": str,
        "reference": str,
        "reference_source": str,
    },
)
