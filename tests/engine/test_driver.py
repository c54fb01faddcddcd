"""End to end on a real local Ray with real HTTP to a scripted OpenAI-compatible teacher,
real sandboxed execution and real parquet on disk."""

from __future__ import annotations

import collections
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from orchestrator.core.records import Record, normalize_question
from orchestrator.engine.driver import FatalRunError, run_job
from orchestrator.methods.tinygsm.execute import RunProgram
from orchestrator.sandbox import Sandbox
from tests.support.configs import make_config
from tests.support.output import check_dataset, rejected_rows, rows
from tests.support.scripted_server import Fault, ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply, unique_good_questions

pytestmark = pytest.mark.usefixtures("ray_local")


def test_one_step_end_to_end(tmp_path: Path, seeds: list) -> None:
    out = tmp_path / "out"
    with ScriptedServer(reply=tinygsm_reply) as srv:
        summary = run_job(make_config(srv.base_url), seeds, out)
        assert srv.request_count == len(seeds)  # one call per seed
        prompts = [body["messages"][-1]["content"] for body in srv.requests]
    # every seed accounted for
    assert summary["seeds_read"] == len(seeds)
    assert summary["seeds_accepted"] + summary["seeds_rejected"] + summary["seeds_failed"] == len(
        seeds
    )
    assert summary["seeds_not_run"] == 0 and summary["seeds_failed"] == 0
    assert summary["requests"] == len(seeds)
    assert summary["prompt_tokens"] > 0 and summary["completion_tokens"] > 0
    # the dataset loads with `datasets`, both ways
    written = rows(out)
    assert len(written) == summary["rows_written"] == summary["rows_total"] > 0
    # (a private cache: `datasets` caches local dirs by name, and every test's dir is "out")
    cache = str(tmp_path / "hf-cache")
    ds = datasets.load_dataset(
        "parquet", data_dir=str(out / "data"), split="train", cache_dir=cache
    )
    assert ds.num_rows == len(written)
    assert datasets.load_dataset(str(out), split="train", cache_dir=cache).num_rows == len(written)
    # every shard has the same schema; rows are SFT-ready: the program, then its answer
    assert check_dataset(out, tmp_path / "hf-check")["data"] > 1
    first = written[0]
    assert first["solution"] == (
        f"```python\n{first['code'].strip()}\n```\n\nThe answer is $\\boxed{{{first['answer']}}}$."
    )
    # rows carry provenance and TinyGSM's program form; the answer is what the program returns
    sandbox, judge = Sandbox(make_config("http://x").sandbox), RunProgram(1e15)
    seed_ids = {s.id for s in seeds}
    for row in written[:8]:
        assert row["seed_id"] in seed_ids and row["method"] == "tinygsm/one-step"
        assert row["code"].startswith("def simple_math_problem() -> int:")
        assert row["template"] == "tinygsm/one_step" and len(row["template_hash"]) == 16
        assert row["teacher"] and row["created_at"] and row["sampling"]["temperature"] is not None
        probe = Record(id="probe", question=row["question"], code=row["code"])
        assert judge.judge(probe, sandbox.run_sync(judge.program(probe))) is None
        assert probe.answer == row["answer"]
    # exact dedup across shards: no normalised question twice, and duplicates were removed
    keys = [normalize_question(r["question"]) for r in written]
    assert len(keys) == len(set(keys))
    assert summary["duplicates"] == len(seeds) - 1  # the fake teacher repeats one question/seed
    # exactly the items the fake teacher made good survive (the filters decide, we compare)
    assert set(keys) == unique_good_questions(prompts)
    # rejected rows are stored with reasons that match the counts
    rejected = rejected_rows(out)
    by_reason = collections.Counter(r["reject_reason"] for r in rejected)
    for reason, n in by_reason.items():
        assert summary["rejected_by_reason"][reason] == n
    assert {"execute:runtime_error", "execute:non_numeric", "dedup:duplicate"} <= set(by_reason)
    assert any(r.startswith("question_filter:") for r in by_reason)
    assert any(r.endswith("syntax_error") for r in by_reason)


def test_resume_makes_no_new_requests(tmp_path: Path, seeds: list) -> None:
    out = tmp_path / "out"
    with ScriptedServer(reply=tinygsm_reply) as srv:
        cfg = make_config(srv.base_url)
        first = run_job(cfg, seeds[:4], out)
        assert srv.request_count == 4
        second = run_job(cfg, seeds, out)  # 4 finished + 6 new
        assert srv.request_count == 10
        third = run_job(cfg, seeds, out)  # everything finished
        assert srv.request_count == 10
    assert second["seeds_skipped_already_finished"] == 4
    assert third["seeds_skipped_already_finished"] == len(seeds) and third["requests"] == 0
    written = rows(out)
    assert len(written) == first["rows_written"] + second["rows_written"] == third["rows_total"]
    keys = [normalize_question(r["question"]) for r in written]
    assert len(keys) == len(set(keys))  # dedup held across the resumed runs
    assert len({r["id"] for r in written}) == len(written)


def test_transient_errors_are_retried(tmp_path: Path, seeds: list) -> None:
    with ScriptedServer(reply=tinygsm_reply) as srv:
        srv.inject([Fault(status=429, retry_after=0.1), Fault(status=500), Fault(status=503),
                    Fault(kind="drop")])  # fmt: skip
        summary = run_job(make_config(srv.base_url), seeds[:5], tmp_path / "out")
        assert srv.request_count == 5 + 4
    assert summary["seeds_failed"] == 0
    assert summary["seeds_accepted"] + summary["seeds_rejected"] == 5


def test_bad_request_fails_the_seed_without_retry_and_resume_retries_it(
    tmp_path: Path, seeds: list
) -> None:
    out = tmp_path / "out"
    with ScriptedServer(reply=tinygsm_reply) as srv:
        cfg = make_config(srv.base_url)
        srv.inject([Fault(status=400)])
        summary = run_job(cfg, seeds[:4], out)
        assert srv.request_count == 4  # the 400 was not retried
        assert summary["seeds_failed"] == 1
        assert summary["teacher_errors"] == {"error:bad_request": 1}
        again = run_job(cfg, seeds[:4], out)
        assert srv.request_count == 5  # only the failed seed is asked again
    assert again["seeds_failed"] == 0 and again["seeds_skipped_already_finished"] == 3


def test_bad_key_stops_the_run_cleanly(tmp_path: Path, seeds: list) -> None:
    out = tmp_path / "out"
    with ScriptedServer(reply=tinygsm_reply) as srv:
        srv.inject([Fault(status=401)] * 20)
        with pytest.raises(FatalRunError, match="OPENAI_API_KEY"):
            run_job(make_config(srv.base_url), seeds[:6], out)
    assert not list((out / "_mathsynth" / "tmp").glob("*"))
    for f in (out / "data").glob("*.parquet"):
        pq.read_table(f)  # every committed file is whole


def test_two_step_end_to_end(tmp_path: Path, seeds: list) -> None:
    out = tmp_path / "out"
    with ScriptedServer(reply=tinygsm_reply) as srv:
        summary = run_job(make_config(srv.base_url, method="two-step"), seeds[:3], out)
        bodies = srv.requests
    n_question_calls = 3 * 2  # variants + GSM-IC for each seed
    stages = summary["items_parsed_by_stage"]
    questions = stages["two_step_variants"] + stages["two_step_gsm_ic"]
    dropped_q = sum(
        v for k, v in summary["rejected_by_reason"].items() if k.startswith("question_filter")
    )
    assert len(bodies) == n_question_calls + questions - dropped_q
    written = rows(out)
    assert written and {r["method"] for r in written} <= {
        "tinygsm/two-step/variants",
        "tinygsm/two-step/gsm_ic",
    }
    assert {r["method"] for r in written} == {
        "tinygsm/two-step/variants",
        "tinygsm/two-step/gsm_ic",
    }
