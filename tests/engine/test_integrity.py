"""Every row exactly once and the same dataset whatever the workers, on a real local Ray with
real HTTP to a scripted teacher that repeats itself inside replies."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.app import build_config
from orchestrator.core.records import normalize_question
from orchestrator.core.seeds import load_seeds
from orchestrator.engine.driver import run_job
from orchestrator.methods.arithmetic.pipeline import make_seeds
from orchestrator.output.store import OutputStore
from tests.support.configs import make_config
from tests.support.misbehaving import chaotic, repeating
from tests.support.output import rejected_rows, rows
from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply

pytestmark = pytest.mark.usefixtures("ray_local")


def with_run(cfg: Any, **run: Any) -> Any:
    return cfg.model_copy(update={"run": cfg.run.model_copy(update=run)})


def assert_unique(out: Path) -> list[dict[str, Any]]:
    written = rows(out)
    ids = [r["id"] for r in written]
    questions = [normalize_question(r["question"]) for r in written]
    assert len(ids) == len(set(ids)) and len(questions) == len(set(questions))
    return written


def test_a_teacher_repeating_itself_inside_a_reply_is_written_once(
    tmp_path: Path, seeds: list
) -> None:
    with ScriptedServer(reply=repeating(tinygsm_reply, copies=3)) as srv:
        summary = run_job(make_config(srv.base_url), seeds, tmp_path / "out")
    written = assert_unique(tmp_path / "out")
    kept = {r["id"] for r in written}
    dups = [r for r in rejected_rows(tmp_path / "out") if r["reject_reason"] == "dedup:duplicate"]
    # every kept row was sent three times: two copies dropped each, naming the kept one
    repeats = [r for r in dups if r["id"] in kept]
    assert len(repeats) >= 2 * len(written) and all(r["reject_detail"] in kept for r in dups)
    assert summary["rows_written"] == len(written) and summary["duplicates"] == len(dups)


def dedup_decisions(out: Path) -> set[tuple[str, str, str]]:
    return {
        (r["id"], r["reject_reason"], r["reject_detail"])
        for r in rejected_rows(out)
        if r["reject_reason"].startswith(("dedup", "near_dedup"))
    }


def test_same_seeds_same_dataset_whatever_the_workers_and_chunks(tmp_path: Path) -> None:
    """Arithmetic with tiny operands: equal questions in many shards. Which copy is kept must
    not depend on arrival order: one worker with 1-seed chunks, two with 3-seed chunks."""
    overrides = {
        "arithmetic": {"size": 1200, "items_per_shard": 50, "digits": {"add_sub": 1},
                       "tasks": {"mul_n1": 0, "mul_nm": 0, "div_n1": 0, "div_nm": 0},
                   "noise": {"word_form": 0, "x_for_times": 0, "spacing": 0}},
        "dedup": {"near": {"enabled": False}},
    }  # fmt: skip
    cfg, _ = build_config("arithmetic", overrides)
    seeds = make_seeds(cfg)
    a = run_job(with_run(cfg, workers=1, commit_every_seeds=1), seeds, tmp_path / "a")
    run_job(with_run(cfg, workers=2, commit_every_seeds=3), seeds, tmp_path / "b")
    ids_a = {r["id"] for r in assert_unique(tmp_path / "a")}
    ids_b = {r["id"] for r in assert_unique(tmp_path / "b")}
    assert a["duplicates"] > 200  # many cross-shard copies: a real test of the keeper
    assert ids_a == ids_b and dedup_decisions(tmp_path / "a") == dedup_decisions(tmp_path / "b")


def test_same_replies_same_dataset_with_near_dedup_and_resume(tmp_path: Path, seeds: list) -> None:
    """TinyGSM with exact and near dedup: 1 worker in one go, or 2 workers stopped after
    half the seeds and resumed, give the same rows and the same drops."""
    with ScriptedServer(reply=repeating(tinygsm_reply)) as srv:
        cfg = make_config(srv.base_url)
        assert cfg.dedup.near.enabled
        run_job(with_run(cfg, workers=1, commit_every_seeds=10), seeds, tmp_path / "a")
        run_job(with_run(cfg, workers=2, commit_every_seeds=1), seeds[:5], tmp_path / "b")
        run_job(with_run(cfg, workers=2, commit_every_seeds=2), seeds, tmp_path / "b")
    ids_a = {r["id"] for r in assert_unique(tmp_path / "a")}
    assert ids_a == {r["id"] for r in assert_unique(tmp_path / "b")}
    assert dedup_decisions(tmp_path / "a") == dedup_decisions(tmp_path / "b")


def test_300_seeds_through_a_misbehaving_teacher_add_up(tmp_path: Path, gsm8k_train: Path) -> None:
    """30% 429s, 10% 503s, 5% dropped connections, 5% malformed JSON, every problem repeated
    inside its reply: every seed is accounted for, ids and questions are unique, and the
    summary agrees with the files on disk and with what the server received."""
    n_seeds = 300
    teacher = chaotic(repeating(tinygsm_reply), seed=11)
    with ScriptedServer(reply=teacher) as srv:
        cfg = make_config(srv.base_url)
        cfg = cfg.model_copy(
            update={"teacher": cfg.teacher.model_copy(update={"max_attempts": 10}),
                    "run": cfg.run.model_copy(update={"concurrency": 16})}
        )  # fmt: skip
        seeds = load_seeds(str(gsm8k_train), cfg.seeds, limit=n_seeds)
        summary = run_job(cfg, seeds, tmp_path / "out")
        assert summary["requests"] == srv.request_count  # every HTTP attempt, faults included
        faults = srv.fault_counts
    assert faults["drop"] > 0 and faults["malformed"] > 0 and srv.status_counts[429] > 100
    out = tmp_path / "out"
    written = assert_unique(out)
    ledger = OutputStore(out).read_ledger()
    assert set(ledger.outcomes) == {s.id for s in seeds} == set(ledger.final)
    totals = summary["totals"]
    seeds_by_outcome = Counter(ledger.outcomes.values())
    assert totals["seeds"] == dict(seeds_by_outcome)
    assert summary["seeds_accepted"] + summary["seeds_rejected"] + summary["seeds_failed"] == 300
    assert summary["seeds_accepted"] == seeds_by_outcome["accepted"]
    assert totals["rows"] == summary["rows_total"] == summary["rows_written"] == len(written)
    rejected = Counter(r["reject_reason"] for r in rejected_rows(out))
    assert totals["rejected_by_reason"] == dict(rejected)
    assert totals["duplicates"] == summary["duplicates"] == rejected["dedup:duplicate"] > 300
    assert totals["requests"] == summary["requests"] and totals["runs"] == 1
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["totals"] == totals and on_disk["runs"][0]["run_id"] == summary["run_id"]
    # a resume with nothing left to do adds a run and loses none of the history
    again = run_job(cfg, seeds, out)
    assert again["requests"] == 0 and again["seeds_skipped_already_finished"] == n_seeds
    kept = ("requests", "completions", "prompt_tokens", "completion_tokens", "rows", "seeds")
    assert {k: again["totals"][k] for k in kept} == {k: totals[k] for k in kept}
    assert again["totals"]["runs"] == 2 and len(again["runs"]) == 2
