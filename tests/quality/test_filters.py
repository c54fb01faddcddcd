"""Decontamination, exact and near dedup inside real runs (engine, Ray, HTTP, parquet): every
dropped row lands in rejected/ with its reason and what it matched."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.records import normalize_question
from orchestrator.core.seeds import load_seeds
from orchestrator.engine.driver import run_job
from orchestrator.output.stats import funnel
from tests.support.configs import make_config
from tests.support.output import rows
from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import plan_one_step, tinygsm_reply

pytestmark = pytest.mark.usefixtures("ray_local")


def with_filters(base_url: str, **sections: Any):
    cfg = make_config(base_url)
    return cfg.model_copy(
        update={k: getattr(cfg, k).model_validate(v) for k, v in sections.items()}
    )


@pytest.fixture
def seeds(gsm8k_train: Path) -> list:
    return load_seeds(str(gsm8k_train), make_config("http://x").seeds, limit=6)


def test_contaminated_problems_are_dropped_naming_the_benchmark_item(
    tmp_path: Path, seeds: list
) -> None:
    # A "benchmark" holding two of the problems the teacher will write, with numbers changed.
    with ScriptedServer(reply=tinygsm_reply) as srv:
        run_job(make_config(srv.base_url), seeds[:3], tmp_path / "probe")
        prompts = [body["messages"][-1]["content"] for body in srv.requests]
    good = [item.question for p in prompts for item in plan_one_step(p) if item.kind == "good"]
    leaked = good[:2]
    assert len(leaked) == 2
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(
        json.dumps({"id": f"b{i}", "question": re.sub(r"\d+", "77", q)}) + "\n"
        for i, q in enumerate(leaked)))  # fmt: skip
    decontam = {"enabled": True, "preset": "tinygsm",
                "benchmarks": [{"path": str(bench), "name": "bench"}]}  # fmt: skip
    out = tmp_path / "out"
    with ScriptedServer(reply=tinygsm_reply) as srv:
        summary = run_job(with_filters(srv.base_url, decontamination=decontam), seeds, out)
    dropped = [r for r in rows(out, "rejected") if r["reject_reason"] == "decontam:contaminated"]
    # the leaks are caught; so is any other item that equals a benchmark item up to names and
    # numbers (the fake teacher's problems share templates), which is the rule's intent
    assert set(leaked) <= {r["question"] for r in dropped}
    assert all(r["reject_detail"].startswith("bench:b") for r in dropped)
    assert not {r["question"] for r in rows(out)} & set(leaked)
    assert summary["rejected_by_reason"]["decontam:contaminated"] == len(dropped)
    assert funnel(out)["dropped_by_stage"]["decontam"]["contaminated"] == len(dropped)


def reworded_reply(request: dict[str, Any], index: int) -> str:
    """The same problems with one word added to a question: near (word 3-gram Jaccard ~0.8),
    not exact, duplicates."""
    return tinygsm_reply(request, index).replace("How many", "So how many")


def test_exact_and_near_duplicates_of_an_earlier_dataset_are_dropped(
    tmp_path: Path, seeds: list
) -> None:
    near = {"enabled": True, "threshold": 0.7}
    more = {"problems_per_seed": 10}  # more good problems per reply
    with ScriptedServer(reply=tinygsm_reply) as srv:
        run_job(
            with_filters(srv.base_url, dedup={"near": near}, tinygsm=more), seeds, tmp_path / "a"
        )
    earlier = {r["id"] for r in rows(tmp_path / "a")}
    again = {"near": near, "against": [str(tmp_path / "a")]}
    with ScriptedServer(reply=tinygsm_reply) as srv:  # the very same problems
        same = run_job(with_filters(srv.base_url, dedup=again, tinygsm=more), seeds, tmp_path / "b")
    assert same["rows_written"] == 0
    exact = [r for r in rows(tmp_path / "b", "rejected") if r["reject_reason"] == "dedup:duplicate"]
    assert {r["reject_detail"] for r in exact} == earlier  # each names the row it repeats
    with ScriptedServer(reply=reworded_reply) as srv:  # the same problems, reworded
        summary = run_job(
            with_filters(srv.base_url, dedup=again, tinygsm=more), seeds, tmp_path / "c"
        )
    near_rows = [r for r in rows(tmp_path / "c", "rejected")
                 if r["reject_reason"] == "near_dedup:near_duplicate"]  # fmt: skip
    assert {r["reject_detail"] for r in near_rows} <= earlier
    assert all("So how many" in r["question"] for r in near_rows)
    # recall on the planted near-duplicates (threshold 0.7, word 3-grams); the rest of the
    # reply is unchanged and goes as exact duplicates
    every = rows(tmp_path / "c", "rejected") + rows(tmp_path / "c")
    reaching_dedup = (None, "dedup:duplicate", "near_dedup:near_duplicate")
    reworded = {normalize_question(r["question"]) for r in every
                if "so how many" in r["question"].lower()
                and r.get("reject_reason") in reaching_dedup}  # fmt: skip
    caught = {normalize_question(r["question"]) for r in near_rows}
    assert len(caught) >= 0.8 * len(reworded)
    assert summary["rows_written"] == len(reworded - caught)
