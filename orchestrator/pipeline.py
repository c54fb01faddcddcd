"""Build a pipeline's steps from its validated config, and its fingerprint.

The fingerprint is a content hash of everything that changes what a run would generate (the
method, templates and their hashes, sampling, filters, sandbox limits, teacher model) and none
of what only changes how fast (workers, concurrency, URLs, timeouts). It guards resume: a
directory written by another configuration is not silently mixed with this one.
This module does not run anything.
"""

from __future__ import annotations

from orchestrator.config import PipelineConfig
from orchestrator.filters import QuestionHasNumber, QuestionLength
from orchestrator.prompts import load_template
from orchestrator.records import content_hash
from orchestrator.stage import Stage
from orchestrator.steps import ExecuteStep, FilterStep, Step, TeacherStep
from orchestrator.tinygsm.execute import RunProgram
from orchestrator.tinygsm.stages import OneStep, TwoStepProgram, TwoStepQuestions


def question_filters(cfg: PipelineConfig) -> FilterStep:
    stages: list[Stage] = [QuestionLength(cfg.filters.min_question_words)]
    if cfg.filters.require_number_in_question:
        stages.append(QuestionHasNumber())
    return FilterStep(stages)


def build_steps(cfg: PipelineConfig) -> list[Step]:
    t = cfg.tinygsm
    execute = ExecuteStep(RunProgram(cfg.filters.max_abs_answer))
    if t.method == "one-step":
        one_step = OneStep(load_template(t.templates.one_step), t.sampling, t.problems_per_seed)
        return [TeacherStep([one_step]), question_filters(cfg), execute]
    family_templates = {
        "variants": t.templates.two_step_questions,
        "gsm_ic": t.templates.two_step_gsm_ic,
    }
    questions = [
        TwoStepQuestions(load_template(family_templates[f]), t.sampling, t.problems_per_seed, f)
        for f in t.two_step_families
    ]
    program = TwoStepProgram(
        load_template(t.templates.two_step_program), t.program_sampling, "tinygsm/two-step"
    )
    return [TeacherStep(questions), question_filters(cfg), TeacherStep([program]), execute]


def fingerprint(cfg: PipelineConfig) -> str:
    t = cfg.tinygsm
    names = [t.templates.one_step] if t.method == "one-step" else [
        t.templates.two_step_questions, t.templates.two_step_gsm_ic, t.templates.two_step_program
    ]  # fmt: skip
    return content_hash(
        cfg.kind,
        t.model_dump(),
        {name: load_template(name).hash for name in names},
        cfg.filters.model_dump(),
        cfg.sandbox.model_dump(exclude={"use_bwrap"}),
        cfg.teacher.model,
    )
