"""Skywork's teacher stages: rephrase, evolve, self-correct (new questions) and solve.

Each stage renders one template from ``prompts/skywork/`` and parses the reply; question stages
make child records carrying Skywork's provenance in ``meta`` (``stage``, ``family``, ``op``,
``slot``, ``evol_depth`` and, for evolutions, ``evol_moves``), and ``Solve`` adds a
chain-of-thought solution, its normalised final answer and the chat form. A record whose gold
answer is known (MetaMath operations) is dropped when its solution's answer differs.

Record ids hash the question *and* its slot/depth, so two slots that produce the same text
get different ids and the engine's exact dedup keeps one of them. This module does not plan
augmentations (``skywork.steps``) or filter questions.
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.prompts import PromptTemplate
from orchestrator.core.records import Record, content_hash
from orchestrator.core.sampling import SamplingParams
from orchestrator.engine.steps import Rejects, TeacherStage
from orchestrator.methods.skywork.parse import clean_question, evolution_problem, labelled_text
from orchestrator.methods.skywork.steps import slot_rng
from orchestrator.quality.verify import answers_equal, extract_final_answer, normalize_answer
from orchestrator.teacher.replies import Completion

_PROVENANCE = ("stage", "family", "op", "slot")


class QuestionStage(TeacherStage):
    """Base of the question-writing stages: template variables and child records."""

    labels: tuple[str, ...] = ()
    stop_labels: tuple[str, ...] = ()
    label_required = False

    def __init__(
        self, template: PromptTemplate, sampling: SamplingParams, method: str, hard: bool
    ) -> None:
        super().__init__(template, sampling, method)
        self.hard = hard

    def variables(self, record: Record) -> dict[str, Any]:
        return {"question": record.question, "hard": self.hard}

    def question_in(self, text: str) -> str | None:
        found = labelled_text(text, self.labels, self.stop_labels)
        if found is None and not self.label_required:
            found = clean_question(text)
        return found

    def child(self, parent: Record, question: str, completion: Completion, **meta: Any) -> Record:
        record = self.derive(parent, question, completion.model)
        record.meta = {k: parent.meta[k] for k in _PROVENANCE if k in parent.meta}
        record.meta.update({"evol_depth": 0, **meta})
        record.id = content_hash(
            record.seed_id, self.method, question, record.meta.get("slot"),
            record.meta.get("evol_depth"),
        )  # fmt: skip
        return record


class Rephrase(QuestionStage):
    """MetaMath rephrasing: same problem and answer, new wording (keeps the gold answer)."""

    name = "rephrase"
    labels = ("Rephrased question", "Rephrased problem")

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        question = self.question_in(completion.text)
        if question is None:
            rejects.count("empty")
            return []
        child = self.child(record, question, completion)
        child.gold_answer = record.gold_answer
        if evolution_problem(record.question, question) == "unchanged":
            rejects.drop(child, "unchanged")
            return []
        return [child]


class SelfCorrect(QuestionStage):
    """Xwin-style: the teacher drafts a question, checks and fixes it; the final one is kept."""

    name = "self_correction"
    labels = ("Final question", "Final problem")
    label_required = True

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        question = self.question_in(completion.text)
        if question is None:
            rejects.count("no_final_question")
            return []
        stops = ("Verification", "Final question", "Final problem")
        draft = labelled_text(completion.text, ("Draft question",), stops)
        return [self.child(record, question, completion, draft_question=draft)]


class Evolve(QuestionStage):
    """One Evol-Instruct step with a move drawn per record and depth (reproducibly)."""

    name = "evol_instruct"
    labels = ("#Rewritten Problem#", "Rewritten Problem")

    def __init__(
        self, template: PromptTemplate, sampling: SamplingParams, method: str, hard: bool,
        moves: list[str], seed: int,
    ) -> None:  # fmt: skip
        super().__init__(template, sampling, method, hard)
        self.moves = moves
        self.seed = seed

    def move_for(self, record: Record) -> str:
        depth = record.meta.get("evol_depth", 0) + 1
        return slot_rng(self.seed, record.id, depth, "move").choice(self.moves)

    def variables(self, record: Record) -> dict[str, Any]:
        return {**super().variables(record), "move": self.move_for(record)}

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        question = self.question_in(completion.text)
        if question is None:
            rejects.count("empty")
            return []
        move = self.move_for(record)
        depth = record.meta.get("evol_depth", 0) + 1
        moves = [*record.meta.get("evol_moves", []), move]
        child = self.child(record, question, completion, evol_depth=depth, evol_moves=moves)
        problem = evolution_problem(record.question, question)
        if problem is not None:
            rejects.drop(child, problem)
            return []
        return [child]


class Solve(TeacherStage):
    """Chain-of-thought solution ending in "The answer is $\\boxed{...}$"."""

    name = "solve"

    def __init__(
        self, template: PromptTemplate, sampling: SamplingParams, check_gold: bool
    ) -> None:
        super().__init__(template, sampling, method="skywork/solve")
        self.check_gold = check_gold

    def variables(self, record: Record) -> dict[str, Any]:
        return {"question": record.question}

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        solution = completion.text.strip()
        answer = extract_final_answer(solution)
        if completion.finish_reason == "length":
            rejects.drop(record, "truncated")
            return []
        if answer is None:
            rejects.drop(record, "no_answer", solution[-300:])
            return []
        record.answer = normalize_answer(answer)
        record.teacher = record.teacher or completion.model
        gold = record.gold_answer
        if self.check_gold and gold is not None and not answers_equal(answer, gold):
            rejects.drop(record, "wrong_answer", f"{answer} != {gold}")
            return []
        record.meta.update(
            solution=solution,
            messages=[
                {"role": "user", "content": record.question},
                {"role": "assistant", "content": solution},
            ],
            solution_template=self.template.name,
            solution_template_hash=self.template.hash,
            solution_sampling=self.sampling.model_dump(exclude_none=True),
        )
        return [record]
