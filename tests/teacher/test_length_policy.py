"""``teacher.on_length`` (keep / retry / reject) for replies cut by ``max_tokens``, through
``ask_teacher`` with real HTTP to the scripted server on 127.0.0.1 (it truncates a reply to
``max_tokens`` words with ``finish_reason == "length"``). What the server saw (each request's
``max_tokens``) is read back from the server; the limiter test runs on the session Ray."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import ray

from orchestrator.core.prompts import load_template
from orchestrator.core.records import Record
from orchestrator.core.sampling import SamplingParams
from orchestrator.engine.context import StepContext
from orchestrator.engine.steps import Rejects, TeacherStage, TeacherStep
from orchestrator.engine.teacher_calls import LengthRejected, ask_teacher, next_budget
from orchestrator.methods.mumath.toolloop import solve
from orchestrator.teacher.client import TeacherClient
from orchestrator.teacher.limiter_client import LimiterClient
from orchestrator.teacher.ratelimit import RateLimiter
from orchestrator.teacher.replies import Completion
from orchestrator.teacher.settings import RateLimits, TeacherSettings
from orchestrator.telemetry.counters import Counters
from tests.support.scripted_server import ScriptedServer


def words_reply(body: dict[str, Any], index: int) -> str:
    """A reply of N words for a prompt "words N" (the server cuts it to max_tokens words)."""
    prompt = str(body["messages"][-1]["content"])
    n = int(prompt.split()[1])
    return " ".join(f"w{i}" for i in range(n - 1)) + " \\boxed{7}"


def make_ctx(srv: ScriptedServer, limiter: LimiterClient | None = None, **teacher: Any):
    settings = TeacherSettings(
        base_url=srv.base_url, model="m", max_attempts=2, backoff_initial_s=0.01,
        read_timeout_s=5, **teacher,
    )  # fmt: skip
    ctx = StepContext(
        teacher=TeacherClient(settings, api_key="k"),
        request_slots=asyncio.Semaphore(4),
        executor=None,  # type: ignore[arg-type]  # nothing is executed here
        counters=Counters(),
        limiter=limiter,
    )
    return ctx


async def ask(ctx: StepContext, words: int, max_tokens: int, **kw: Any) -> Completion:
    try:
        return await ask_teacher(
            ctx, [{"role": "user", "content": f"words {words}"}],
            SamplingParams(max_tokens=max_tokens), **kw,
        )  # fmt: skip
    finally:
        assert ctx.teacher is not None
        await ctx.teacher.close()


def sent_budgets(srv: ScriptedServer) -> list[int]:
    return [r["max_tokens"] for r in srv.requests]


@pytest.fixture
def srv():
    with ScriptedServer(reply=words_reply) as server:
        yield server


def test_next_budget() -> None:
    assert next_budget(10, 2.0, 8192) == 20
    assert next_budget(10, 1.5, 8192) == 15
    assert next_budget(1, 1.1, 8192) == 2  # always at least one more token
    assert next_budget(6000, 2.0, 8192) == 8192
    assert next_budget(8192, 2.0, 8192) is None
    assert next_budget(9000, 2.0, 8192) is None  # a stage asking above the cap


def test_keep_returns_the_cut_reply(srv: ScriptedServer) -> None:
    ctx = make_ctx(srv, on_length="keep")
    completion = asyncio.run(ask(ctx, words=30, max_tokens=10))
    assert completion.finish_reason == "length" and len(completion.text.split()) == 10
    assert sent_budgets(srv) == [10]
    assert ctx.counters.get("teacher", "finish:length") == 1
    assert ctx.counters.get("teacher", "length_retries") == 0


def test_retry_grows_the_budget_until_the_reply_fits(srv: ScriptedServer) -> None:
    ctx = make_ctx(srv, on_length="retry", length_retry_factor=2.0)
    completion = asyncio.run(ask(ctx, words=30, max_tokens=10))
    assert completion.finish_reason == "stop" and completion.text.endswith("\\boxed{7}")
    assert len(completion.text.split()) == 30
    assert sent_budgets(srv) == [10, 20, 40]
    assert ctx.counters.get("teacher", "length_retries") == 2
    assert ctx.counters.get("teacher", "finish:length") == 2
    assert ctx.counters.get("teacher", "requests") == 3


def test_retry_rejects_once_the_cap_is_reached(srv: ScriptedServer) -> None:
    ctx = make_ctx(srv, on_length="retry", length_retry_factor=2.0, length_max_tokens=25)
    with pytest.raises(LengthRejected) as info:
        asyncio.run(ask(ctx, words=30, max_tokens=10))
    assert sent_budgets(srv) == [10, 20, 25]
    assert info.value.max_tokens == 25 and info.value.completion.finish_reason == "length"
    assert ctx.counters.get("teacher", "length_retries") == 2
    assert ctx.counters.get("teacher", "length_rejected") == 1


def test_reject_drops_at_once(srv: ScriptedServer) -> None:
    ctx = make_ctx(srv, on_length="reject")
    with pytest.raises(LengthRejected):
        asyncio.run(ask(ctx, words=30, max_tokens=10))
    assert sent_budgets(srv) == [10]
    ok = asyncio.run(ask(make_ctx(srv, on_length="reject"), words=5, max_tokens=10))
    assert ok.finish_reason == "stop"  # a reply that fits is untouched


def test_a_stop_sequence_cut_is_not_a_length_cut(srv: ScriptedServer) -> None:
    # The reply is 30 words, but the stop sequence cuts it to 3: finish_reason "stop".
    def reply(body: dict[str, Any], index: int) -> str:
        return "a b c ```output " + " ".join(["x"] * 26)

    with ScriptedServer(reply=reply) as server:
        ctx = make_ctx(server, on_length="reject")
        completion = asyncio.run(ask(ctx, words=30, max_tokens=10, stop=["```output"]))
        assert completion.finish_reason == "stop" and sent_budgets(server) == [10]


class Echo(TeacherStage):
    """A minimal stage: one child record per reply."""

    name = "echo"

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        return [self.derive(record, completion.text, completion.model)]


@pytest.mark.parametrize("policy", ["keep", "reject", "retry"])
def test_teacher_step_drops_the_record_with_reason_length(
    srv: ScriptedServer, tmp_path: Path, policy: str
) -> None:
    (tmp_path / "echo.j2").write_text("words {{ seed.question }}\n")
    stage = Echo(load_template("echo", tmp_path), SamplingParams(max_tokens=10), "test/echo")
    seeds = [Record.seed("30", None, "t"), Record.seed("5", None, "t")]
    ctx = make_ctx(srv, on_length=policy, length_max_tokens=20)

    async def go() -> list[Record]:
        try:
            return await TeacherStep([stage]).arun(seeds, ctx)
        finally:
            assert ctx.teacher is not None
            await ctx.teacher.close()

    out = asyncio.run(go())
    if policy == "keep":
        assert len(out) == 2 and not ctx.rejected
        return
    # "reject": cut at 10; "retry": cut at 10, then still cut at the cap (20)
    assert [len(r.question.split()) for r in out] == [5]
    assert [r.reject_reason for r in ctx.rejected] == ["echo:length"]
    assert ctx.rejected[0].question == "30"
    assert ctx.counters.get("echo", "dropped:length") == 1
    assert ctx.counters.get("echo", "seen") == 2
    assert sorted(sent_budgets(srv)) == ([10, 10] if policy == "reject" else [10, 10, 20])


@pytest.mark.parametrize("policy", ["retry", "reject"])
def test_tool_loop_sample_is_retried_or_ends_as_length(srv: ScriptedServer, policy: str) -> None:
    ctx = make_ctx(srv, on_length=policy)

    async def go():
        try:
            return await solve(ctx, "words 30", SamplingParams(max_tokens=16), tools=False)
        finally:
            assert ctx.teacher is not None
            await ctx.teacher.close()

    traj = asyncio.run(go())
    if policy == "retry":
        assert traj.end == "answer" and traj.answer == "7" and sent_budgets(srv) == [16, 32]
    else:
        assert traj.end == "length" and traj.answer is None and sent_budgets(srv) == [16]


def settled_stats(limiter: Any, timeout: float = 10.0) -> dict[str, Any]:
    """The limiter's stats once every grant was settled (settle is fire-and-forget)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = ray.get(limiter.stats.remote())
        if stats["in_flight"] == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


@pytest.mark.usefixtures("ray_local")
def test_the_re_ask_reserves_the_larger_budget(srv: ScriptedServer) -> None:
    limits = RateLimits(tokens_per_minute=1_000_000)
    limiter = RateLimiter.remote(limits.model_dump())
    try:
        ctx = make_ctx(srv, LimiterClient(limiter, limits), on_length="retry")
        completion = asyncio.run(ask(ctx, words=30, max_tokens=10))
        stats = settled_stats(limiter)
    finally:
        ray.kill(limiter)
    assert completion.finish_reason == "stop"
    assert stats["grants"] == 3 and stats["reserved_output_tokens"] == 10 + 20 + 40
    assert stats["in_flight"] == 0
    assert stats["output_tokens"] == 10 + 20 + 30  # corrected with each reply's usage


@pytest.mark.usefixtures("ray_local")
def test_job_stores_length_rejections(tmp_path: Path, gsm8k_train: Path) -> None:
    """Whole engine: every one-step reply is longer than the cap, so each seed is asked twice
    (30, then 60 tokens) and its record lands in rejected/ as ``one_step:length``."""
    import pyarrow.parquet as pq

    from orchestrator.core.seeds import load_seeds
    from orchestrator.engine.driver import run_job
    from tests.support.configs import make_config
    from tests.support.tinygsm_teacher import tinygsm_reply

    seeds = load_seeds(str(gsm8k_train), make_config("http://x").seeds, limit=4)
    with ScriptedServer(reply=tinygsm_reply) as server:
        cfg = make_config(server.base_url)
        assert cfg.teacher is not None
        cfg.teacher.on_length, cfg.teacher.length_max_tokens = "retry", 60
        cfg.tinygsm.sampling.max_tokens = 30
        summary = run_job(cfg, seeds, tmp_path / "out")
        budgets = sorted(sent_budgets(server))
    assert budgets == [30] * len(seeds) + [60] * len(seeds)
    assert summary["requests"] == 2 * len(seeds) and summary["seeds_failed"] == 0
    assert summary["teacher_length"] == {
        "finish:length": 2 * len(seeds), "length_retries": len(seeds),
        "length_rejected": len(seeds),
    }  # fmt: skip
    assert summary["rejected_by_reason"] == {"one_step:length": len(seeds)}
    files = sorted((tmp_path / "out" / "rejected").glob("*.parquet"))
    stored = [r for f in files for r in pq.read_table(f).to_pylist()]
    assert sorted(r["reject_reason"] for r in stored) == ["one_step:length"] * len(seeds)
    assert {r["seed_id"] or r["id"] for r in stored} == {s.id for s in seeds}
    assert all("max_tokens=60" in r["reject_detail"] for r in stored)
