"""A generation method written outside mathsynth, with only ``orchestrator.api``: the tests
copy this folder somewhere else and name it in a pipeline file (``kind: doubler_method:METHOD``)
or through an entry point.

For each seed the teacher writes a program printing ``factor`` times the seed's answer
(``doubler_prompts/ask.j2``, found through ``Method.prompts``); the program runs in the
sandbox (``ExecuteStage``), its output is the answer, and ``VerifyAgainstGold`` keeps it only if
it is ``factor`` times the seed's gold answer. Rows carry two typed ``meta`` fields.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field

from orchestrator.api import (
    Completion,
    ExecResult,
    ExecuteStage,
    ExecuteStep,
    FilterStep,
    Method,
    PipelineConfig,
    PromptTemplate,
    Record,
    Rejects,
    SamplingParams,
    Step,
    StrictModel,
    TeacherStage,
    TeacherStep,
    TemplateName,
    VerifyAgainstGold,
)

_CODE = re.compile(r"```python\n(.*?)```", re.DOTALL)


class Templates(StrictModel):
    ask: TemplateName = "ask"


class DoublerConfig(StrictModel):
    factor: int = Field(2, ge=1)
    templates: Templates = Templates()
    sampling: SamplingParams = SamplingParams(temperature=0.0, max_tokens=200)
    verify: bool = True


class AskProgram(TeacherStage):
    name = "ask_program"

    def __init__(self, template: PromptTemplate, sampling: SamplingParams, factor: int) -> None:
        super().__init__(template, sampling, method="doubler")
        self.factor = factor

    def variables(self, record: Record) -> dict[str, object]:
        return {"question": record.question, "factor": self.factor}

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        found = _CODE.search(completion.text)
        if found is None:
            rejects.count("no_program")
            return []
        question = f"What is {self.factor} times the answer to this? {record.question}"
        child = self.derive(record, question, completion.model, code=found.group(1).strip())
        if record.gold_answer is not None:
            child.gold_answer = str(self.factor * int(record.gold_answer))
        child.meta.update(factor=self.factor, reply_words=len(completion.text.split()))
        return [child]


class RunProgram(ExecuteStage):
    name = "run_program"

    def program(self, record: Record) -> str:
        return record.code or ""

    def judge(self, record: Record, result: ExecResult) -> str | None:
        if not result.ok:
            return "runtime_error"
        lines = result.stdout.strip().splitlines()
        if not lines:
            return "no_output"
        record.answer = lines[-1].strip()
        return None


def build_steps(cfg: PipelineConfig) -> list[Step]:
    s: DoublerConfig = METHOD.section(cfg)
    steps: list[Step] = [
        TeacherStep([AskProgram(cfg.template(s.templates.ask), s.sampling, s.factor)]),
        ExecuteStep(RunProgram()),
    ]
    if s.verify:
        steps.append(FilterStep([VerifyAgainstGold(require_gold=True)]))
    return steps


METHOD = Method(
    name="doubler",
    build_steps=build_steps,
    config=DoublerConfig,
    prompts=Path(__file__).parent / "doubler_prompts",
    meta={"factor": int, "reply_words": int},
    request_plan=lambda cfg: [(1, METHOD.section(cfg).sampling)],
)
