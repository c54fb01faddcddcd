"""MuMath-Code end to end: real local Ray, real HTTP to the scripted fake teacher, real
sandboxed code execution, real parquet. Outcomes are checked against what the fake teacher
planned (computed here independently of the pipeline's selection code)."""

from __future__ import annotations

import json
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest

from orchestrator.cli.app import build_config
from orchestrator.core.config import PipelineConfig
from orchestrator.core.seeds import load_seeds
from orchestrator.engine.driver import run_job
from orchestrator.methods.mumath.toolloop import FIX_REQUEST
from tests.support.mumath_teacher import (
    TASK_MARKERS,
    code_value,
    mumath_reply,
    plan_sample,
    seed_rows,
    true_answer,
)
from tests.support.output import check_dataset
from tests.support.scripted_server import ScriptedServer

pytestmark = pytest.mark.usefixtures("ray_local")
N, BASE_SEED, MAX_CALLS, THRESHOLD = 6, 1000, 3, 0.5
TURNS = {"direct": 2, "wrong": 2, "error_fix": 3, "loop": MAX_CALLS + 1, "no_code": 1,
         "no_answer": 1}  # fmt: skip


def make_config(base_url: str, **section: Any) -> PipelineConfig:
    overrides = {
        "teacher": {"base_url": base_url, "model": "scripted", "max_attempts": 2,
                    "backoff_initial_s": 0.05, "read_timeout_s": 10},
        "run": {"workers": 2, "concurrency": 16, "commit_every_seeds": 2, "final_commit_rows": 4},
        "sandbox": {"wall_time_s": 5, "cpu_time_s": 5},
        "mumath_code": {"samples_per_question": N, "max_tool_calls": MAX_CALLS,
                        "agreement_threshold": THRESHOLD,
                        "solve_sampling": {"seed": BASE_SEED}, **section},
    }  # fmt: skip
    cfg, builtin = build_config("mumath_code", overrides)
    assert not builtin
    return cfg


def read(out: Path, folder: str) -> list[dict[str, Any]]:
    return [
        r for f in sorted((out / folder).glob("*.parquet")) for r in pq.read_table(f).to_pylist()
    ]


def expected(question: str, gold: str | None) -> tuple[list[int], Fraction | None]:
    """Indices of the samples the pipeline may keep, and the answer they agree on."""
    answers: list[Fraction | None] = []
    for k in range(N):
        kind = plan_sample(question, BASE_SEED + k)
        counts = kind in ("direct", "wrong", "error_fix")  # loop/no_answer: none; no_code: no tool
        answers.append(code_value(question, BASE_SEED + k, kind) if counts else None)
    if gold is not None:
        target: Fraction | None = Fraction(gold)
    else:
        votes = Counter(a for a in answers if a is not None).most_common(1)
        target = votes[0][0] if votes and votes[0][1] / N >= THRESHOLD else None
    return [i for i, a in enumerate(answers) if target is not None and a == target], target


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in seed_rows(4)))
    return path


def test_code_nested_solutions_end_to_end(tmp_path: Path, seed_file: Path) -> None:
    cfg = make_config("http://x")
    seeds = load_seeds(str(seed_file), cfg.seeds)
    out = tmp_path / "out"
    with ScriptedServer(reply=mumath_reply) as srv:
        summary = run_job(make_config(srv.base_url), seeds, out)
        bodies = srv.requests
    assert summary["seeds_failed"] == 0 and summary["seeds_not_run"] == 0
    rows, rejected = read(out, "data"), read(out, "rejected")
    assert (
        datasets.load_dataset(
            str(out), split="train", cache_dir=str(tmp_path / "hf-cache")
        ).num_rows
        == len(rows)
        > 0
    )
    assert check_dataset(out, tmp_path / "hf-check")["data"] > 1  # one schema in every shard
    solved = rows + [r for r in rejected if r["reject_reason"].startswith("solve:")]
    ops = Counter(r["method"].split("/")[1] for r in solved)
    assert ops == {op: len(seeds) for op in ("original", "rephrase", "alter_expression",
                                             "alter_harder", "fobar", "bf_trans")}  # fmt: skip
    # every question's outcome is the one the fake teacher's plan implies
    for row in solved:
        ok, target = expected(row["question"], row["gold_answer"])
        if row in rejected:
            reason = "solve:no_correct_sample" if row["gold_answer"] else "solve:no_majority"
            assert not ok and row["reject_reason"] == reason
            continue
        meta = row["meta"]
        assert ok and meta["sample_index"] == ok[0] and meta["agreeing_samples"] == len(ok)
        assert Fraction(row["answer"]) == target and meta["pseudo_answer"] is (
            row["gold_answer"] is None
        )
        kind = plan_sample(row["question"], BASE_SEED + ok[0])
        assert meta["n_tool_calls"] == (2 if kind == "error_fix" else 1)
        assert meta["n_tool_errors"] == (kind == "error_fix")
        assert ("ZeroDivisionError" in row["solution"]) is (kind == "error_fix")
        assert (
            f"```output\n{row['answer']}\n```" in row["solution"] and "999" not in row["solution"]
        )
        assert row["messages"] == [{"role": "user", "content": row["question"]},
                                   {"role": "assistant", "content": row["solution"]}]  # fmt: skip
        if row["gold_answer"] is not None:  # gold answers are right, found without our code
            assert true_answer(row["question"]) == Fraction(row["gold_answer"])
        if row["method"].endswith(("fobar", "bf_trans")):
            assert row["gold_answer"] == meta["masked_value"]
    reasons = Counter(r["reject_reason"] for r in rejected)
    assert reasons["solve:no_majority"] > 0  # harder variants confuse the fake teacher
    assert any(r["meta"]["pseudo_answer"] for r in rows)
    # the error path ran once per planned error-and-fix sample: error shown, fix requested
    fixes = [b for b in bodies if b["messages"][-1]["content"].endswith(FIX_REQUEST)]
    planned = [(r["question"], k) for r in solved for k in range(N)
               if plan_sample(r["question"], BASE_SEED + k) == "error_fix"]  # fmt: skip
    assert len(fixes) == len(planned) > 0
    assert all("ZeroDivisionError" in b["messages"][-1]["content"] for b in fixes)
    # request accounting: question writing + every sample's turns (stop, execute, continue)
    solve_bodies = [b for b in bodies if TASK_MARKERS["solve_code"] in b["messages"][0]["content"]]
    assert all(b["stop"] == ["```output"] for b in solve_bodies)
    turns = sum(TURNS[plan_sample(r["question"], BASE_SEED + k)] for r in solved for k in range(N))
    assert len(solve_bodies) == turns
    assert len(bodies) - len(solve_bodies) == 4 * len(seeds)


def test_chain_of_thought_stage1_data(tmp_path: Path, seed_file: Path) -> None:
    cfg = make_config("http://x")
    seeds = load_seeds(str(seed_file), cfg.seeds)[:2]
    out = tmp_path / "cot"
    with ScriptedServer(reply=mumath_reply) as srv:
        run_job(make_config(srv.base_url, solution_format="cot"), seeds, out)
        bodies = srv.requests
    rows = read(out, "data")
    check_dataset(out, tmp_path / "hf-check")
    assert len(rows) == 6 * len(seeds)  # the fake's chains of thought are always right
    for row in rows:
        meta = row["meta"]
        assert meta["solution_format"] == "cot" and meta["n_tool_calls"] == 0
        assert "```" not in row["solution"] and Fraction(row["answer"]) == true_answer(
            row["question"]
        )
    solve_bodies = [b for b in bodies if TASK_MARKERS["solve_cot"] in b["messages"][0]["content"]]
    assert len(solve_bodies) == 6 * len(seeds) * N and not any("stop" in b for b in solve_bodies)
