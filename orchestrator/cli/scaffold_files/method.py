"""A generation method of your own, made by ``mathsynth init``: edit it freely.

For every seed problem the teacher writes ``problems_per_seed`` new problems like it
(``prompts/question.j2``, one request each), the question filters drop the unusable ones, and
the teacher solves each remaining problem step by step (``prompts/solve.j2``); the solution's
final answer ("The answer is N", or its last number) is the row's answer. Rows get the chat form
(user: question, assistant: solution) automatically.

The hooks to edit: ``variables`` (what a template sees), ``parse`` (a teacher reply into
records, or a drop with a reason, counted in the run summary), and ``build_steps`` (the order of
the steps). To run programs in the sandbox add an ``ExecuteStep`` (an ``ExecuteStage`` with
``program``/``judge``); to check answers against known ones add ``VerifyAgainstGold`` to a
``FilterStep``. See README "Write your own pipeline".
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field

from orchestrator.api import (
    Completion,
    FilterStep,
    Method,
    PipelineConfig,
    PromptTemplate,
    QuestionHasNumber,
    QuestionLength,
    Record,
    Rejects,
    SamplingParams,
    Step,
    StrictModel,
    TeacherStage,
    TeacherStep,
    TemplateName,
    extract_final_answer,
)

METHOD_NAME = "my_method"
_LABEL = re.compile(r"^\s*(?:new\s+)?(?:problem|question)\s*\d*\s*[:.]\s*", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


class Templates(StrictModel):
    """Template names (looked up in prompts/ next to this file) or paths to .j2 files."""

    question: TemplateName = "question"
    solve: TemplateName = "solve"


class Settings(StrictModel):
    """This method's section of the pipeline file (unknown keys are errors)."""

    problems_per_seed: int = Field(2, ge=1, le=20)
    templates: Templates = Templates()
    sampling: SamplingParams = SamplingParams(temperature=0.8, max_tokens=200)
    solve_sampling: SamplingParams = SamplingParams(temperature=0.2, max_tokens=400)


class WriteProblem(TeacherStage):
    """One new problem like the seed (request ``index`` of ``problems_per_seed``)."""

    name = "write_problem"

    def __init__(self, template: PromptTemplate, sampling: SamplingParams, index: int) -> None:
        seed = None if sampling.seed is None else sampling.seed + index
        super().__init__(template, sampling.model_copy(update={"seed": seed}), METHOD_NAME)
        self.index = index

    def variables(self, record: Record) -> dict[str, object]:
        return {"seed": record}

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        paragraphs = [p.strip() for p in completion.text.strip().split("\n\n") if p.strip()]
        question = _LABEL.sub("", paragraphs[0]).strip() if paragraphs else ""
        if not question:
            rejects.count("empty")
            return []
        child = self.derive(record, question, completion.model)
        child.meta["sample"] = self.index
        return [child]


class Solve(TeacherStage):
    """A step-by-step solution; its final answer becomes the row's answer."""

    name = "solve"

    def variables(self, record: Record) -> dict[str, object]:
        return {"question": record.question}

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        solution = completion.text.strip()
        numbers = _NUMBER.findall(solution)
        answer = extract_final_answer(solution) or (
            numbers[-1].replace(",", "") if numbers else None
        )
        if answer is None:
            rejects.drop(record, "no_answer", solution[-300:])
            return []
        record.answer = answer
        record.meta["solution"] = solution  # the assistant turn of the chat form
        record.meta["solve_template"] = self.template.name
        return [record]


def build_steps(cfg: PipelineConfig) -> list[Step]:
    s: Settings = METHOD.section(cfg)
    write = [
        WriteProblem(cfg.template(s.templates.question), s.sampling, i)
        for i in range(s.problems_per_seed)
    ]
    filters = [QuestionLength(cfg.filters.min_question_words)]
    if cfg.filters.require_number_in_question:
        filters.append(QuestionHasNumber())
    solve = Solve(cfg.template(s.templates.solve), s.solve_sampling, METHOD_NAME)
    return [TeacherStep(write), FilterStep(filters), TeacherStep([solve])]


def request_plan(cfg: PipelineConfig) -> list[tuple[float, SamplingParams]]:
    """Teacher requests per seed and their sampling, for ``mathsynth run --dry-run``."""
    s: Settings = METHOD.section(cfg)
    return [(s.problems_per_seed, s.sampling), (s.problems_per_seed, s.solve_sampling)]


METHOD = Method(
    name=METHOD_NAME,
    build_steps=build_steps,
    config=Settings,
    prompts=Path(__file__).parent / "prompts",
    meta={"sample": int, "solve_template": str},  # typed columns of the `meta` struct
    request_plan=request_plan,
)
