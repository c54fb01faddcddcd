"""Never pay twice: the reply log on a real local Ray, real HTTP to a scripted teacher, real
parquet and JSON lines on disk (and on an S3-compatible server on loopback).

A request counts as paid when the scripted server received it; prompts are compared by their
content, so "asked again" means the same prompt reached the server twice."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.core.records import Record, normalize_question
from orchestrator.core.resources import data_dir
from orchestrator.engine.driver import run_job
from orchestrator.output.store import OutputStore
from orchestrator.quality.filters import QuestionLength
from orchestrator.teacher.pricing import Price
from tests.support import s3_server as s3
from tests.support.cli import cli, run_cli
from tests.support.configs import make_config
from tests.support.output import rejected_rows, rows
from tests.support.scripted_server import Fault, ScriptedServer
from tests.support.tinygsm_teacher import TASK_MARKERS, last_user_message, tinygsm_reply

s3_server, s3_env, s3_bucket = s3.s3_server, s3.s3_env, s3.s3_bucket  # fixtures


def with_section(cfg: Any, name: str, **values: Any) -> Any:
    return cfg.model_copy(update={name: getattr(cfg, name).model_copy(update=values)})


def prompts(srv: ScriptedServer, start: int = 0) -> Counter[str]:
    return Counter(last_user_message(body) for body in srv.requests[start:])


@pytest.mark.usefixtures("ray_local")
def test_a_changed_filter_rebuilds_from_the_log_with_zero_requests(
    tmp_path: Path, seeds: list
) -> None:
    out = tmp_path / "out"
    with ScriptedServer(reply=tinygsm_reply) as srv:
        cfg = make_config(srv.base_url)
        first = run_job(cfg, seeds, out)
        paid = srv.request_count
        before = rows(out)
        words = sorted(len(r["question"].split()) for r in rows(out))
        cut = words[len(words) // 2] + 1  # a filter that drops about half of the rows
        stricter = with_section(cfg, "filters", min_question_words=cut)
        again = run_job(stricter, seeds, out)
        assert srv.request_count == paid  # everything came from the reply log
        assert again["cache_hits"] == paid and again["requests"] == 0
        elsewhere = stricter.model_copy(
            update={"run": stricter.run.model_copy(update={"reuse_replies": [str(out)]})}
        )
        copy = run_job(elsewhere, seeds, tmp_path / "new")  # a new --out, the same log
        assert srv.request_count == paid and copy["requests"] == 0
    assert "rebuilt from the reply log" in again["configuration_change"]
    kept = {r["id"] for r in rows(out)}
    short = QuestionLength(cut)
    expected = {
        r["id"] for r in before if short.filter(Record(id="", question=r["question"])) is None
    }
    assert kept == expected and len(kept) < len(before) and first["rows_written"] == len(before)
    assert {r["id"] for r in rows(tmp_path / "new")} == kept
    too_short = [r for r in rejected_rows(out) if r["reject_reason"] == "question_filter:too_short"]
    assert {r["id"] for r in too_short} >= {r["id"] for r in before} - kept
    history = json.loads((out / "summary.json").read_text())
    assert [r["requests"] for r in history["runs"]] == [paid, 0]  # the first run's cost stays
    assert history["totals"]["requests"] == paid and history["totals"]["rows"] == len(kept)


@pytest.mark.usefixtures("ray_local")
def test_a_changed_program_prompt_asks_only_the_program_requests(
    tmp_path: Path, seeds: list
) -> None:
    out = tmp_path / "out"
    with ScriptedServer(reply=tinygsm_reply) as srv:
        cfg = make_config(srv.base_url, method="two-step", problems_per_seed=3)
        run_job(cfg, seeds, out)
        asked = prompts(srv)
        programs = sum(n for p, n in asked.items() if TASK_MARKERS["two_step_program"] in p)
        assert 0 < programs < srv.request_count
        mark = srv.request_count
        longer = cfg.tinygsm.program_sampling.model_copy(update={"max_tokens": 700})
        run_job(with_section(cfg, "tinygsm", program_sampling=longer), seeds, out)
        again = prompts(srv, mark)
    assert sum(again.values()) == programs
    assert all(TASK_MARKERS["two_step_program"] in p for p in again)


def two_step_pipeline(tmp_path: Path) -> Path:
    pipeline = yaml.safe_load((data_dir("pipelines") / "tinygsm.yaml").read_text())
    pipeline["run"].update({"workers": 1, "concurrency": 8, "commit_every_seeds": 4})
    pipeline["tinygsm"].update({"method": "two-step", "problems_per_seed": 2,
                                "two_step_families": ["variants"]})  # fmt: skip
    pipeline["teacher"].update({"read_timeout_s": 2, "max_attempts": 50,
                                "backoff_initial_s": 0.05, "backoff_max_s": 0.1})  # fmt: skip
    pipeline["decontamination"]["enabled"] = False
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipeline))
    return tmp_path / "p.yaml"


def test_ctrl_c_after_answered_requests_then_rerun_pays_for_none_again(
    tmp_path: Path, gsm8k_train: Path
) -> None:
    """Question replies come back, program requests hang: Ctrl-C commits no seed, yet the
    rerun asks none of the answered question prompts again."""
    stalled = {"on": True}

    def teacher(body: dict[str, Any], index: int) -> str | Fault:
        if stalled["on"] and TASK_MARKERS["two_step_program"] in last_user_message(body):
            return Fault(kind="timeout", seconds=3)
        return tinygsm_reply(body, index)

    out, n_seeds = tmp_path / "out", 8
    with ScriptedServer(reply=teacher, known_models=["s"]) as srv:
        args = ("run", str(two_step_pipeline(tmp_path)), "--seeds", str(gsm8k_train), "--limit",
                str(n_seeds), "--out", str(out), "--base-url", srv.base_url, "--model", "s",
                "--no-progress")  # fmt: skip
        proc = cli(*args)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answered = [p for p in prompts(srv) if TASK_MARKERS["two_step_questions"] in p]
            if len(answered) >= n_seeds:
                break
            time.sleep(0.2)
        time.sleep(1)  # program requests are in flight and stalled
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 130, output
        assert OutputStore(out).read_ledger().finished == set()  # nothing was committed
        first = prompts(srv)
        stalled["on"] = False
        code, output = run_cli(*args)
        assert code == 0, output
        again = prompts(srv, sum(first.values()))
    questions = [p for p in first if TASK_MARKERS["two_step_questions"] in p]
    assert len(questions) == n_seeds and not set(questions) & set(again)
    assert len(OutputStore(out).read_ledger().finalized) == n_seeds


def test_the_reply_log_on_an_object_store(s3_bucket: str, ray_local: None, seeds: list) -> None:
    out = f"s3://{s3_bucket}/out"
    with ScriptedServer(reply=tinygsm_reply) as srv:
        cfg = make_config(srv.base_url)
        run_job(cfg, seeds, out)
        paid = srv.request_count
        rebuilt = run_job(with_section(cfg, "filters", min_question_words=12), seeds, out)
        assert srv.request_count == paid and rebuilt["cache_hits"] == paid
    assert rebuilt["rows_total"] > 0 and "rebuilt" in rebuilt["configuration_change"]


@pytest.mark.usefixtures("ray_local")
def test_max_cost_stops_new_work_and_a_larger_budget_goes_on(tmp_path: Path, seeds: list) -> None:
    out = tmp_path / "out"
    with ScriptedServer(reply=tinygsm_reply) as srv:
        cfg = make_config(srv.base_url)
        priced = with_section(cfg, "teacher", price=Price(input_per_m=1000.0, output_per_m=1000.0))
        one_seed = run_job(priced, seeds[:1], tmp_path / "probe")
        per_seed = one_seed["cost_usd"]
        paid = srv.request_count
        slow = priced.run.model_copy(
            update={"workers": 1, "concurrency": 1, "commit_every_seeds": 1,
                    "max_cost_usd": 3.5 * per_seed}
        )  # fmt: skip
        stopped = run_job(priced.model_copy(update={"run": slow}), seeds, out)
        spent = srv.request_count - paid
        assert stopped["stopped"].startswith("stopped by --max-cost") and spent < len(seeds)
        assert stopped["cost_usd"] <= 5 * per_seed and stopped["seeds_not_run"] > 0
        bigger = slow.model_copy(update={"max_cost_usd": 100 * per_seed})
        rest = run_job(priced.model_copy(update={"run": bigger}), seeds, out)
        assert rest["stopped"] is None and srv.request_count - paid == len(seeds)
    assert len(OutputStore(out).read_ledger().finalized) == len(seeds)


def test_show_prints_the_exact_teacher_reply_behind_a_row(
    tmp_path: Path, gsm8k_train: Path
) -> None:
    pipeline = yaml.safe_load((data_dir("pipelines") / "tinygsm.yaml").read_text())
    pipeline["run"].update({"workers": 1, "concurrency": 2})
    pipeline["decontamination"]["enabled"] = False
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipeline))
    out = tmp_path / "out"
    with ScriptedServer(reply=tinygsm_reply, known_models=["s"]) as srv:
        code, output = run_cli("run", str(tmp_path / "p.yaml"), "--seeds", str(gsm8k_train),
                               "--limit", "2", "--out", str(out), "--base-url", srv.base_url,
                               "--model", "s", "--no-progress")  # fmt: skip
        assert code == 0, output
        replies = {last_user_message(b): tinygsm_reply(b, 0) for b in srv.requests}
    row = rows(out)[0]
    code, output = run_cli("show", str(out), "--id", row["id"], "--raw")
    assert code == 0, output
    assert json.loads(output[output.index("{") : output.index("\n}") + 2])["id"] == row["id"]
    behind = [r for r in replies.values() if normalize_question(row["question"]) in
              normalize_question(r)]  # fmt: skip
    assert any(reply.strip() in output for reply in behind) and "finish_reason stop" in output
