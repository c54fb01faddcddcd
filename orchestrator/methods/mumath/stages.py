"""MuMath-Code's question augmentation: plan the questions of a seed, and the teacher stages
that write rephrasings, altered questions and BF-Trans questions.

``PlanQuestions`` expands a seed into one record per requested question (``augmentations``):
the original question and FOBAR questions are built here by program (FOBAR's gold answer is
the masked number); rephrase / alter / BF-Trans become tasks for the teacher stages. Gold
answers: the original and its rephrasings keep the seed's; FOBAR and BF-Trans questions get the
masked number; altered questions have none (the solve step falls back to a majority vote).
This module does not solve questions (``mumath.solve``).
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.prompts import PromptTemplate
from orchestrator.core.records import Record, content_hash
from orchestrator.core.sampling import SamplingParams
from orchestrator.engine.context import StepContext
from orchestrator.engine.steps import Rejects, TeacherStage, now_iso
from orchestrator.methods.skywork.backward import fobar_question, mask_number
from orchestrator.methods.skywork.parse import clean_question, evolution_problem, labelled_text
from orchestrator.methods.skywork.steps import slot_rng
from orchestrator.teacher.replies import Completion

from .config import MuMathConfig

METHOD = "mumath_code"
TEACHER_OPS = ("rephrase", "alter_expression", "alter_harder", "bf_trans")


class PlanQuestions:
    """Seed -> one record per question to solve (see module docstring)."""

    name = "mumath_plan"

    def __init__(self, cfg: MuMathConfig) -> None:
        self.cfg = cfg

    async def arun(self, records: list[Record], ctx: StepContext) -> list[Record]:
        out: list[Record] = []
        for seed in records:
            for op, count in self.cfg.augmentations.model_dump().items():
                for slot in range(count):
                    ctx.counters.add(self.name, f"planned:{op}")
                    record = self.plan(seed, op, slot, Rejects(self.name, ctx))
                    if record is not None:
                        out.append(record)
        return out

    def plan(self, seed: Record, op: str, slot: int, rejects: Rejects) -> Record | None:
        meta: dict[str, Any] = {"op": op, "slot": slot}
        task = Record(
            id=content_hash(seed.id, "mumath-task", op, slot), question=seed.question,
            seed_id=seed.id, source=seed.source, gold_answer=seed.gold_answer, meta=meta,
        )  # fmt: skip
        if op in ("rephrase", "alter_expression", "alter_harder"):
            return task
        if op == "original":
            return question_record(seed, op, seed.question, seed.gold_answer, meta, slot)
        if seed.gold_answer is None:
            rejects.drop(task, "no_gold", f"{op} needs the seed's gold answer")
            return None
        masked = mask_number(seed.question, slot_rng(self.cfg.seed, seed.id, op, slot))
        if masked is None:
            rejects.drop(task, "no_maskable_number")
            return None
        backward = fobar_question(masked, seed.gold_answer)
        meta.update(unknown=masked.name, masked_value=masked.value,
                    original_answer=seed.gold_answer)  # fmt: skip
        if op == "fobar":
            return question_record(seed, op, backward, masked.value, meta, slot)
        meta["fobar_question"] = backward
        task.gold_answer = masked.value
        return task


def question_record(
    seed: Record, op: str, question: str, gold: str | None, meta: dict[str, Any], slot: int
) -> Record:
    method = f"{METHOD}/{op}"
    return Record(
        id=content_hash(seed.id, method, question, slot), question=question, seed_id=seed.id,
        method=method, source=seed.source, gold_answer=gold, created_at=now_iso(),
        meta=dict(meta),
    )  # fmt: skip


class NewQuestion(TeacherStage):
    """A teacher-written question after "New question:" (or the whole reply)."""

    labels = ("New question", "Rephrased question")
    keeps_gold = False  # rephrasings keep the gold answer, alterations lose it

    def __init__(self, template: PromptTemplate, sampling: SamplingParams, op: str) -> None:
        super().__init__(template, sampling, method=f"{METHOD}/{op}")
        self.name = op

    def variables(self, record: Record) -> dict[str, Any]:
        return {"question": record.question, **record.meta}

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        text = completion.text
        question = labelled_text(text, self.labels) or clean_question(text)
        if question is None:
            rejects.count("empty")
            return []
        child = self.derive(record, question, completion.model)
        child.meta = dict(record.meta)
        child.meta.pop("fobar_question", None)
        child.id = content_hash(child.seed_id, self.method, question, record.meta["slot"])
        child.gold_answer = record.gold_answer if self.keeps_gold else None
        problem = self.problem(record, question)
        if problem is not None:
            rejects.drop(child, problem)
            return []
        return [child]

    def problem(self, record: Record, question: str) -> str | None:
        """Why ``question`` cannot be used (unchanged, leaked prompt, refusal), or None."""
        return evolution_problem(record.question, question)


class Rephrase(NewQuestion):
    keeps_gold = True


class BackwardForward(NewQuestion):
    """BF-Trans: the FOBAR question rewritten as a forward question asking for the masked
    quantity; its gold answer is the masked number (carried on the task record)."""

    keeps_gold = True

    def variables(self, record: Record) -> dict[str, Any]:
        return {"question": record.meta["fobar_question"], "original": record.question,
                "unknown": record.meta["unknown"]}  # fmt: skip

    def problem(self, record: Record, question: str) -> str | None:
        if "unknown variable" in question:
            return "still_backward"
        return super().problem(record, question)
