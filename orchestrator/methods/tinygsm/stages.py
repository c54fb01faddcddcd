"""TinyGSM's teacher stages: one-step (problems + programs in one reply) and two-step
(question variants / GSM-IC variants, then one program per question).

Each stage only renders its template and parses the reply into records; the worker sends the
requests, ``execute`` runs the programs, filters and dedup come after. Parsing rules live in
``orchestrator.methods.tinygsm.replies`` (with ``reply_text``); ``function_form`` rewrites programs.
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.prompts import PromptTemplate
from orchestrator.core.records import Record, content_hash
from orchestrator.core.sampling import SamplingParams
from orchestrator.engine.steps import Rejects, TeacherStage
from orchestrator.methods.tinygsm.function_form import ProgramFormatError, to_tinygsm_function
from orchestrator.methods.tinygsm.replies import parse_one_step, parse_program, parse_questions
from orchestrator.methods.tinygsm.reply_text import END_OF_PROGRAM
from orchestrator.teacher.replies import Completion


def _count_parse_errors(errors: list[str], rejects: Rejects) -> None:
    for reason in errors:
        rejects.count(f"parse:{reason}")


class OneStep(TeacherStage):
    """Fig. 3: one call per seed returns n problems, each followed by its program."""

    name = "one_step"

    def __init__(self, template: PromptTemplate, sampling: SamplingParams, n: int) -> None:
        super().__init__(template, sampling, method="tinygsm/one-step")
        self.n = n

    def variables(self, record: Record) -> dict[str, Any]:
        return {"seed": record, "n": self.n}

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        text = completion.text
        if completion.finish_reason == "stop" and not text.rstrip().endswith(END_OF_PROGRAM):
            # The teacher ended on its own, so the last program is complete even though the
            # closing marker is missing; a reply cut by max_tokens keeps its last pair dropped.
            text = text.rstrip() + "\n" + END_OF_PROGRAM
        result = parse_one_step(text)
        _count_parse_errors(result.errors, rejects)
        out = []
        for question, program in result.items:
            child = self.derive(record, question, completion.model, code=program)
            try:
                child.code = to_tinygsm_function(question, program)
            except ProgramFormatError as err:
                rejects.drop(child, "syntax_error", str(err))
                continue
            out.append(child)
        return out


class TwoStepQuestions(TeacherStage):
    """Figs. 7-8: n question variants of a seed (``variants``) or with irrelevant context
    (``gsm_ic``)."""

    def __init__(
        self, template: PromptTemplate, sampling: SamplingParams, n: int, family: str
    ) -> None:
        super().__init__(template, sampling, method=f"tinygsm/two-step/{family}")
        self.n = n
        self.name = f"two_step_{family}"

    def variables(self, record: Record) -> dict[str, Any]:
        return {"seed": record, "n": self.n}

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        result = parse_questions(completion.text)
        _count_parse_errors(result.errors, rejects)
        return [self.derive(record, q, completion.model) for q in result.items]


class TwoStepProgram(TeacherStage):
    """Fig. 9: one solution program for a generated question (keeps the question's method)."""

    name = "two_step_program"

    def variables(self, record: Record) -> dict[str, Any]:
        return {"question": record.question}

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        program = parse_program(completion.text)
        if program is None:
            rejects.drop(record, "missing_program")
            return []
        try:
            record.code = to_tinygsm_function(record.question, program)
        except ProgramFormatError as err:
            rejects.drop(record, "syntax_error", str(err))
            return []
        record.meta["program_template"] = self.template.name
        record.meta["program_template_hash"] = self.template.hash
        record.id = content_hash(record.seed_id, record.method, record.question, record.code)
        return [record]
