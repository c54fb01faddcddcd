"""Sample n solutions per question and keep one whose answer is right.

For every question ``SampleSolutions`` runs ``samples_per_question`` tool loops (or plain
chain-of-thought samples) concurrently; with ``solve_sampling.seed`` set, sample k is sent
``seed + k``, so samples differ yet are reproducible. A sample counts when it ended with an
answer (and, for code-format data with ``require_tool_call``, ran code at least once). Then:

- a question with a gold answer keeps the first counting sample whose answer equals it
  (``solve:no_correct_sample`` otherwise);
- a question without one (altered questions) takes the majority answer as a pseudo-answer if
  at least ``agreement_threshold`` of *all* samples agree on it, and keeps the first sample
  with that answer (``solve:no_majority`` otherwise).

The exact dedup of the engine keys on the question, so one solution per question is kept; the
row records how many samples agreed. The kept row carries the stitched solution, its chat form
``messages`` (user: the bare question, assistant: the solution) and, in ``meta``, the tool-call
count, the agreement and whether its answer is a pseudo-answer. Nothing here writes rows.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from orchestrator.core.prompts import PromptTemplate
from orchestrator.core.records import Record
from orchestrator.core.sampling import SamplingParams
from orchestrator.engine.context import StepContext
from orchestrator.engine.steps import Rejects
from orchestrator.quality.verify import answers_equal, majority_vote

from .config import MuMathConfig
from .toolloop import Trajectory, solve


class SampleSolutions:
    name = "solve"

    def __init__(self, template: PromptTemplate, sampling: SamplingParams, cfg: MuMathConfig):
        self.template = template
        self.sampling = sampling
        self.cfg = cfg
        self.tools = cfg.solution_format == "code"

    def seeds(self) -> list[int | None]:
        base, n = self.sampling.seed, self.cfg.samples_per_question
        return [None] * n if base is None else [base + k for k in range(n)]

    def counts(self, traj: Trajectory) -> bool:
        if traj.end != "answer":
            return False
        return not (self.tools and self.cfg.require_tool_call and traj.tool_calls == 0)

    async def arun(self, records: list[Record], ctx: StepContext) -> list[Record]:
        kept = await asyncio.gather(*(self.solve_one(r, ctx) for r in records))
        return [r for r in kept if r is not None]

    async def solve_one(self, record: Record, ctx: StepContext) -> Record | None:
        prompt = self.template.render(question=record.question)
        cfg = self.cfg
        trajs = await asyncio.gather(
            *(
                solve(ctx, prompt, self.sampling, seed=seed, tools=self.tools,
                      max_tool_calls=cfg.max_tool_calls, output_max_chars=cfg.output_max_chars)
                for seed in self.seeds()
            )
        )  # fmt: skip
        for traj in trajs:
            ctx.counters.add(self.name, f"end:{traj.end}")
            ctx.counters.add(self.name, "tool_calls", traj.tool_calls)
            ctx.counters.add(self.name, "tool_errors", traj.tool_errors)
        ctx.counters.add(self.name, "seen")
        answers = [t.answer if self.counts(t) else None for t in trajs]
        rejects = Rejects(self.name, ctx)
        votes = ", ".join(f"{a}: {n}" for a, n in Counter(answers).most_common(5))
        pseudo = record.gold_answer is None
        if pseudo:
            target, share = majority_vote(answers, cfg.agreement_threshold)
            if target is None:
                rejects.drop(record, "no_majority", f"top share {share:.2f}; {votes}")
                return None
        else:
            target = record.gold_answer
        agreeing = [i for i, a in enumerate(answers) if answers_equal(a, target)]
        if not agreeing:
            rejects.drop(record, "no_correct_sample", f"gold {target}; {votes}")
            return None
        ctx.counters.add(self.name, "kept")
        return self.fill(record, trajs[agreeing[0]], agreeing[0], len(agreeing), pseudo)

    def fill(
        self, record: Record, traj: Trajectory, index: int, agreeing: int, pseudo: bool
    ) -> Record:
        n = self.cfg.samples_per_question
        record.answer = traj.answer
        record.teacher = record.teacher or traj.model
        record.reply_ids.extend(k for k in traj.reply_ids if k not in record.reply_ids)
        record.meta.update(
            solution=traj.solution,
            messages=[
                {"role": "user", "content": record.question},
                {"role": "assistant", "content": traj.solution},
            ],
            solution_format=self.cfg.solution_format,
            pseudo_answer=pseudo,
            samples=n,
            agreeing_samples=agreeing,
            agreement=round(agreeing / n, 4),
            sample_index=index,
            n_tool_calls=traj.tool_calls,
            n_tool_errors=traj.tool_errors,
            solution_template=self.template.name,
            solution_template_hash=self.template.hash,
            solution_sampling=self.sampling.model_dump(exclude_none=True),
        )
        return record
