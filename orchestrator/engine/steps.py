"""Asynchronous pipeline steps: how a seed becomes generated records inside one worker.

A pipeline is a list of steps; each takes the records of the previous one and returns the
survivors. Three kinds:

- ``TeacherStep``: one or more ``TeacherStage``s (hooks ``prompt`` and ``parse``), each applied
  to every input record, requests bounded by the worker's in-flight slots;
- ``ExecuteStep``: runs each record's program in the sandbox (hook ``execute`` result handling
  lives in the stage given to it);
- ``FilterStep``: synchronous ``Stage``s (filters/maps) run as a chain.

Dropped records go to ``ctx.rejected`` with their reason; counters go to ``ctx.counters``.
A teacher request that fails for good raises ``TeacherError`` so the worker marks the whole seed
failed (it is retried on the next run). A reply cut by ``max_tokens`` that the teacher's
``on_length`` policy does not keep raises ``LengthRejected`` (``TeacherStep`` drops the input
record with reason ``length``). This module does not dedup, write or talk to Ray.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol

from orchestrator.core.prompts import PromptTemplate
from orchestrator.core.records import Record, content_hash
from orchestrator.core.sampling import SamplingParams
from orchestrator.core.stage import Stage, run_chain
from orchestrator.engine.context import StepContext
from orchestrator.engine.teacher_calls import LengthRejected, ask_teacher
from orchestrator.sandbox import ExecResult
from orchestrator.sandbox.detail import reject_detail
from orchestrator.teacher.replies import Completion


class Step(Protocol):
    async def arun(self, records: list[Record], ctx: StepContext) -> list[Record]: ...


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class TeacherStage:
    """One prompt family: render ``template`` for a record, send it, parse the reply.

    Leaf classes override ``parse`` (and ``variables`` if the template needs more than the
    record). ``derive`` builds a child record carrying provenance (template, hash, sampling).
    """

    name = "teacher"

    def __init__(self, template: PromptTemplate, sampling: SamplingParams, method: str) -> None:
        self.template = template
        self.sampling = sampling
        self.method = method

    def variables(self, record: Record) -> dict[str, Any]:
        return {"seed": record}

    def prompt(self, record: Record) -> str:
        return self.template.render(**self.variables(record))

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        raise NotImplementedError

    def derive(self, parent: Record, question: str, teacher: str, **fields: Any) -> Record:
        seed_id = parent.seed_id or parent.id
        code = fields.get("code")
        return Record(
            id=content_hash(seed_id, self.method, question, code),
            question=question,
            seed_id=seed_id,
            method=self.method,
            source=parent.source,
            gold_answer=None,
            teacher=teacher,
            template=self.template.name,
            template_hash=self.template.hash,
            sampling=self.sampling.model_dump(exclude_none=True),
            created_at=now_iso(),
            parent_id=parent.id if parent.method != "seed" else None,
            reply_ids=list(parent.reply_ids),
            **fields,
        )


class Rejects:
    """Where a stage reports what it dropped: whole records, or reply-level problems."""

    def __init__(self, stage_name: str, ctx: StepContext) -> None:
        self.stage_name = stage_name
        self.ctx = ctx

    def drop(self, record: Record, reason: str, detail: str | None = None) -> None:
        self.ctx.counters.add(self.stage_name, f"dropped:{reason}")
        self.ctx.rejected.append(record.reject(f"{self.stage_name}:{reason}", detail))

    def count(self, reason: str) -> None:
        """A problem with no record to keep (e.g. an unparseable part of a reply)."""
        self.ctx.counters.add(self.stage_name, f"dropped:{reason}")


class TeacherStep:
    """Apply every stage to every record; results are concatenated in input order."""

    def __init__(self, stages: Sequence[TeacherStage]) -> None:
        self.stages = list(stages)

    async def _call(self, stage: TeacherStage, record: Record, ctx: StepContext) -> list[Record]:
        messages = [{"role": "user", "content": stage.prompt(record)}]
        rejects = Rejects(stage.name, ctx)
        try:
            completion = await ask_teacher(ctx, messages, stage.sampling, seed=stage.sampling.seed)
        except LengthRejected as cut:  # cut by max_tokens and not kept (teacher.on_length)
            # a copy: the same input record may go to other stages of this step
            rejects.drop(dataclasses.replace(record), "length", cut.detail)
            children = []
        else:
            children = stage.parse(record, completion, rejects)
            for child in children:  # provenance: the logged replies each row came from
                if completion.reply_id is not None and completion.reply_id not in child.reply_ids:
                    child.reply_ids.append(completion.reply_id)
        ctx.counters.add(stage.name, "seen")
        ctx.counters.add(stage.name, "produced", len(children))
        return children

    async def arun(self, records: list[Record], ctx: StepContext) -> list[Record]:
        calls = [self._call(s, r, ctx) for r in records for s in self.stages]
        results = await asyncio.gather(*calls)
        return [child for children in results for child in children]


class ExecuteStage:
    """Hook holder for ``ExecuteStep``: build the program to run, judge the result."""

    name = "execute"

    def program(self, record: Record) -> str:
        raise NotImplementedError

    def judge(self, record: Record, result: ExecResult) -> str | None:
        """Set ``record.answer`` and return None, or return a drop reason."""
        raise NotImplementedError


class ExecuteStep:
    def __init__(self, stage: ExecuteStage) -> None:
        self.stage = stage

    async def arun(self, records: list[Record], ctx: StepContext) -> list[Record]:
        """Programs go to the worker's batching executor: one sandbox process serves many
        seeds' programs."""
        if not records:
            return []
        programs = [self.stage.program(r) for r in records]
        results = await ctx.executor.run(programs)
        kept = []
        for record, program, result in zip(records, programs, results, strict=True):
            ctx.counters.add(self.stage.name, "seen")
            ctx.counters.add(self.stage.name, "cpu_seconds", result.duration_s)
            reason = self.stage.judge(record, result)
            if reason is None:
                ctx.counters.add(self.stage.name, "kept")
                kept.append(record)
            else:  # never the program's own text (stderr): it could carry anything it read
                detail = reject_detail(result, program)
                Rejects(self.stage.name, ctx).drop(record, reason, detail)
        return kept


class FilterStep:
    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = list(stages)

    async def arun(self, records: list[Record], ctx: StepContext) -> list[Record]:
        kept = run_chain(self.stages, records)
        for stage in self.stages:
            ctx.counters.merge(stage.counters.take())
            ctx.rejected.extend(stage.rejected)
            stage.rejected.clear()
        return kept


class Branch:
    """Run ``steps`` on the input records and send their output to side split ``split``
    (e.g. verifier data); the input passes on unchanged to the main line."""

    def __init__(self, steps: Sequence[Step], split: str) -> None:
        self.steps = list(steps)
        self.split = split

    async def arun(self, records: list[Record], ctx: StepContext) -> list[Record]:
        out = list(records)
        for step in self.steps:
            out = await step.arun(out, ctx)
            if not out:
                break
        ctx.side.setdefault(self.split, []).extend(out)
        return records
