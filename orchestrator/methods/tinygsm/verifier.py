"""TinyGSM verifier data: n candidate programs per seed, each labelled correct or incorrect.

For every seed, the teacher writes ``samples`` programs for the *seed's own* question
(``two_step_program`` template, sampled); each is executed in the sandbox and labelled by
comparing its answer with the seed's gold answer, or, for a seed without one, with the majority
answer of the candidates (a pseudo-answer, used only when its share reaches the threshold).
All candidates are kept, failing ones labelled incorrect: this is the training data of a
verifier model, written to the ``verifier`` side split. Nothing here reaches the train split.
"""

from __future__ import annotations

from orchestrator.core.prompts import PromptTemplate
from orchestrator.core.records import Record, content_hash
from orchestrator.core.sampling import SamplingParams
from orchestrator.engine.context import StepContext
from orchestrator.engine.steps import Rejects, TeacherStage
from orchestrator.methods.tinygsm.execute import RunProgram
from orchestrator.methods.tinygsm.function_form import ProgramFormatError, to_tinygsm_function
from orchestrator.methods.tinygsm.replies import parse_program
from orchestrator.quality.verify import answers_equal, majority_vote
from orchestrator.teacher.replies import Completion

METHOD = "tinygsm/verifier"


class CandidateProgram(TeacherStage):
    """One sampled program for the seed's question (stage ``index`` of ``samples``)."""

    name = "verifier_candidates"

    def __init__(self, template: PromptTemplate, sampling: SamplingParams, index: int) -> None:
        seed = None if sampling.seed is None else sampling.seed + index
        super().__init__(template, sampling.model_copy(update={"seed": seed}), METHOD)
        self.index = index

    def variables(self, record: Record) -> dict[str, object]:
        return {"question": record.question}

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        program = parse_program(completion.text) or ""
        child = self.derive(record, record.question, completion.model)
        try:
            child.code = to_tinygsm_function(record.question, program)
        except ProgramFormatError:
            child.code = program  # kept: a candidate that does not parse is an incorrect one
        child.gold_answer = record.gold_answer
        child.parent_id = record.id
        child.meta["sample"] = self.index
        child.id = content_hash(child.seed_id, METHOD, self.index, child.code)
        return [child]


class LabelCandidates:
    """Execute every candidate and label it against the gold answer or the pseudo-answer."""

    name = "verifier_label"

    def __init__(self, threshold: float, max_abs_answer: float) -> None:
        self.threshold = threshold
        self.judge = RunProgram(max_abs_answer)

    async def arun(self, records: list[Record], ctx: StepContext) -> list[Record]:
        if not records:
            return []
        results = await ctx.executor.run([self.judge.program(r) for r in records])
        for record, result in zip(records, results, strict=True):
            record.meta["execution"] = self.judge.judge(record, result) or "ok"
        reference, source = records[0].gold_answer, "gold"
        if reference is None:
            answers = [r.answer for r in records if r.answer is not None]
            reference, share = majority_vote(answers, self.threshold) if answers else (None, 0)
            source = f"majority:{share:.2f}"
        if reference is None:
            ctx.counters.add(self.name, "dropped:no_reference", len(records))
            return []
        for record in records:
            record.meta["label"] = record.answer is not None and answers_equal(
                record.answer, reference
            )
            record.meta["reference"] = reference
            record.meta["reference_source"] = source
            ctx.counters.add(self.name, "correct" if record.meta["label"] else "incorrect")
        return records
