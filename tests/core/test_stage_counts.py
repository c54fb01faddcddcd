"""Counters of a chain of filters: consecutive filters sharing a name (TinyGSM's two question
filters) are one funnel row, counted once (it used to read 5400 in / 5100 out for 2700 / 2400)."""

from __future__ import annotations

import asyncio

from orchestrator.core.records import Record
from orchestrator.core.stage import run_chain
from orchestrator.engine.steps import FilterStep, StepContext
from orchestrator.quality.filters import QuestionHasNumber, QuestionLength
from orchestrator.quality.format_filters import FormatSettings
from orchestrator.sandbox import Sandbox
from orchestrator.sandbox.batch import BatchingExecutor
from orchestrator.sandbox.limits import SandboxLimits


def records() -> list[Record]:
    """2700 questions: 200 too short, 100 (long enough) without a number."""
    out = [Record(id=f"s{i}", question="Two apples?") for i in range(200)]
    out += [Record(id=f"n{i}", question="How many apples does Ann have now?") for i in range(100)]
    out += [Record(id=f"k{i}", question=f"Ann has {i} apples and buys 3. How many?")
            for i in range(2400)]  # fmt: skip
    return out


def test_two_question_filters_count_as_one_row() -> None:
    stages = [QuestionLength(5), QuestionHasNumber()]
    kept = run_chain(stages, records())
    assert len(kept) == 2400
    merged = {}
    for stage in stages:
        for name, value in stage.counters.group("question_filter").items():
            merged[name] = merged.get(name, 0) + value
    assert merged == {"seen": 2700, "kept": 2400, "dropped:too_short": 200,
                      "dropped:no_number": 100}  # fmt: skip


def test_the_worker_step_reports_one_group_whatever_the_chunking() -> None:
    """Through ``FilterStep`` (what the worker runs), over several calls."""
    step = FilterStep([QuestionLength(5), QuestionHasNumber()])
    ctx = StepContext(None, asyncio.Semaphore(1), BatchingExecutor(Sandbox(SandboxLimits())))
    batch = records()
    for i in range(0, len(batch), 500):
        asyncio.run(step.arun(batch[i : i + 500], ctx))
    group = ctx.counters.group("question_filter")
    assert group["seen"] == 2700 and group["kept"] == 2400
    assert group["seen"] == group["kept"] + group["dropped:too_short"] + group["dropped:no_number"]


def test_the_three_format_filters_are_one_row_too() -> None:
    stages = FormatSettings(question_min_words=4, solution_min_tokens=3,
                            required=["return result"]).build()  # fmt: skip
    assert [s.name for s in stages] == ["format"] * 3
    rows = [Record(id=f"r{i}", question="How many apples are left?", code=code)
            for i, code in enumerate(["x = 1\nreturn result", "return result", "a = 1 + 2"])]  # fmt: skip
    kept = run_chain(stages, [*rows, Record(id="q", question="Too short", code="x")])
    assert len(kept) == 1
    seen = sum(s.counters.get("format", "seen") for s in stages)
    out = sum(s.counters.get("format", "kept") for s in stages)
    assert (seen, out) == (4, 1)
