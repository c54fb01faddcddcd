"""Skywork end to end: real local Ray, real HTTP to a scripted teacher, real parquet; stage 1,
the core-set command, then stage 2 on its seeds."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest

from orchestrator.cli.app import build_config
from orchestrator.core.config import PipelineConfig
from orchestrator.core.records import Record
from orchestrator.core.seeds import load_seeds
from orchestrator.engine.driver import run_job
from orchestrator.methods.skywork.coreset import main as coreset_main
from orchestrator.quality.verify import answers_equal, extract_final_answer, normalize_answer
from tests.support.output import check_dataset
from tests.support.scripted_server import ScriptedServer
from tests.support.skywork_teacher import (
    MOVE_SENTENCES,
    TASK_MARKERS,
    SkyworkTeacher,
    evolution_depth,
    last_user_message,
)

pytestmark = pytest.mark.usefixtures("ray_local")
FAMILIES = {"metamath", "evol_instruct", "self_correction"}


def make_config(base_url: str, **skywork: Any) -> PipelineConfig:
    overrides = {
        "teacher": {"base_url": base_url, "model": "scripted", "max_attempts": 2,
                    "backoff_initial_s": 0.05, "read_timeout_s": 5},
        "run": {"workers": 2, "concurrency": 4, "commit_every_seeds": 3, "final_commit_rows": 5},
        "skywork": {"problems_per_seed": 6, "evol_steps": 3, **skywork},
    }  # fmt: skip
    cfg, builtin = build_config("skywork", overrides)
    assert not builtin
    return cfg


def read(out: Path, folder: str) -> list[dict[str, Any]]:
    return [
        r for f in sorted((out / folder).glob("*.parquet")) for r in pq.read_table(f).to_pylist()
    ]


def math_seeds(shared_data: Path, tmp_path: Path, n: int = 8) -> tuple[Path, list[Record]]:
    """The first ``n`` MATH problems (a stand-in seed file with `level` labels)."""
    path = shared_data / "math" / "test.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with path.open() as fh:
        lines = [next(fh) for _ in range(n)]
    seed_file = tmp_path / "math_seeds.jsonl"
    seed_file.write_text("".join(lines))
    return seed_file, load_seeds(str(seed_file), make_config("http://x").seeds)


def check_rows(rows: list[dict[str, Any]], rejected: list[dict[str, Any]], teacher: SkyworkTeacher,
               seeds: list[Record], stage: int) -> None:  # fmt: skip
    by_id = {r["id"]: r for r in rows + rejected}
    seed_questions = {s.id: s.question for s in seeds}
    seed_golds = {s.id: s.gold_answer for s in seeds}
    for row in rows:
        meta = row["meta"]
        assert meta["stage"] == stage and meta["family"] in FAMILIES
        assert row["seed_id"] in seed_questions
        # chat form and flat columns agree; the answer is the solution's normalised answer
        assert row["messages"] == [{"role": "user", "content": row["question"]},
                                   {"role": "assistant", "content": row["solution"]}]  # fmt: skip
        assert row["answer"] == normalize_answer(extract_final_answer(row["solution"]))
        planned = teacher.plan_solution(row["question"])
        if row["gold_answer"] is not None:  # MetaMath operations are checked against gold
            assert meta["family"] == "metamath" and not planned.wrong
            assert answers_equal(row["answer"], row["gold_answer"])
            assert answers_equal(planned.gold, row["gold_answer"])  # the fake agrees
        else:  # nothing to check against: the teacher's answer is kept as it is
            assert row["answer"] == normalize_answer(planned.answer)
            if meta["family"] == "metamath":  # only a rephrasing of a seed without gold
                assert meta["op"] == "rephrase" and seed_golds[row["seed_id"]] is None
        if meta["op"] in ("fobar", "self_verification"):
            name, value = meta["unknown"], meta["masked_value"]
            assert row["gold_answer"] == value
            assert teacher.true_answer(row["question"]) == value  # found without our code
            assert row["question"].endswith(f"What is the value of unknown variable {name}?"[1:])
        depth = meta["evol_depth"]  # stage-2 seeds may be evolved already: count from the seed
        added = evolution_depth(row["question"]) - evolution_depth(seed_questions[row["seed_id"]])
        assert depth == (added if meta["family"] == "evol_instruct" else 0)
        if meta["family"] == "evol_instruct":
            assert len(meta["evol_moves"]) == depth >= 1
            if depth == 1:
                assert row["parent_id"] is None
                assert row["question"].startswith(seed_questions[row["seed_id"]].strip())
            else:  # the parent is the previous round's question (kept or rejected)
                parent = by_id[row["parent_id"]]
                parent_meta = parent["meta"]
                assert parent_meta["evol_depth"] == depth - 1
                assert parent_meta["evol_moves"] == meta["evol_moves"][:-1]
                assert row["question"].startswith(parent["question"])
        else:
            assert row["parent_id"] is None


def test_stage1_then_core_set_then_stage2(tmp_path: Path, shared_data: Path) -> None:
    seed_file, seeds = math_seeds(shared_data, tmp_path)
    teacher = SkyworkTeacher((s.question, s.gold_answer) for s in seeds)
    out1 = tmp_path / "s1"
    with ScriptedServer(reply=teacher) as srv:
        summary = run_job(make_config(srv.base_url), seeds, out1)
        prompts = [last_user_message(b) for b in srv.requests]
    assert summary["seeds_failed"] == 0 and summary["seeds_not_run"] == 0
    rows, rejected = read(out1, "data"), read(out1, "rejected")
    assert len(rows) == summary["rows_total"] > 0
    assert datasets.load_dataset(
        str(out1), split="train", cache_dir=str(tmp_path / "hf-cache")
    ).num_rows == len(rows)
    check_rows(rows, rejected, teacher, seeds, stage=1)
    assert check_dataset(out1, tmp_path / "hf-check")["data"] > 1  # one schema in every shard
    ops = Counter(r["meta"]["op"] for r in rows)
    assert set(ops) >= {"rephrase", "fobar", "answer_augmentation", "evol_instruct",
                        "self_correction"}  # fmt: skip
    # evolutions went several rounds deep, and eliminated ones ended their chain
    depths = Counter(r["meta"]["evol_depth"] for r in rows)
    assert depths[1] and depths[2] and depths[3] and not depths[4]
    reasons = Counter(r["reject_reason"] for r in rejected)
    assert reasons["evol_instruct:unchanged"] + reasons["evol_instruct:refusal"] > 0
    eliminated = {r["id"] for r in rejected if r["reject_reason"].startswith("evol_instruct:")}
    assert not any(r["parent_id"] in eliminated for r in rows + rejected)
    # one evolution request per evolved record (kept, dropped by solve/dedup, or eliminated)
    evolved = [r for r in rows + rejected if r["method"] == "skywork/evol_instruct"]
    assert sum(TASK_MARKERS["evol"] in p for p in prompts) == len(evolved)
    # every wrong solution to a question with a known gold answer was dropped, and only those
    for r in rejected:
        if r["reject_reason"] == "solve:wrong_answer":
            assert teacher.plan_solution(r["question"]).wrong and r["gold_answer"] is not None
    assert reasons["solve:wrong_answer"] > 0
    assert reasons["self_correction:no_final_question"] == 0  # counted, not a row
    assert summary["rejected_by_reason"].get("self_correction:no_final_question", 0) > 0

    # core set from hard lineages (MATH Level 4-5), then stage 2 on it
    seeds2_file = tmp_path / "stage2.jsonl"
    assert coreset_main([str(out1), "--out", str(seeds2_file), "--size", "5", "--seeds",
                         str(seed_file), "--difficulty-field", "level"]) == 0  # fmt: skip
    levels = {s.id: json.loads(line)["level"] for s, line in zip(
        seeds, seed_file.read_text().splitlines(), strict=True)}  # fmt: skip
    hard = {sid for sid, level in levels.items() if level in ("Level 4", "Level 5")}
    written = [json.loads(line) for line in seeds2_file.read_text().splitlines()]
    core = [w for w in written if w["source"] == "skywork-stage1-coreset"]
    assert len(core) == 5 and {w["seed_id"] for w in core} <= hard
    assert {w["seed_id"] for w in written if w["source"] == "hard-seed"} == hard
    seeds2 = load_seeds(str(seeds2_file), make_config("http://x").seeds)
    teacher2 = SkyworkTeacher((s.question, s.gold_answer) for s in seeds2)
    out2 = tmp_path / "s2"
    with ScriptedServer(reply=teacher2) as srv:
        run_job(make_config(srv.base_url, stage=2), seeds2, out2)
        prompts2 = [last_user_message(b) for b in srv.requests]
    rows2 = read(out2, "data")
    assert rows2
    check_rows(rows2, read(out2, "rejected"), teacher2, seeds2, stage=2)
    question_prompts = [p for p in prompts2 if TASK_MARKERS["solve"] not in p
                        and TASK_MARKERS["rephrase"] not in p]  # fmt: skip
    assert question_prompts and all("MATH Level 4-5" in p for p in question_prompts)
    assert not any("MATH Level 4-5" in p for p in prompts)
    same = "Rewriting method: Same-difficulty rewrite"  # stage 2 only makes problems harder
    assert any(same in p for p in prompts) and not any(same in p for p in prompts2)
    assert all((r["meta"]["evol_moves"] or []).count("same_difficulty") == 0 for r in rows2)
    assert set(MOVE_SENTENCES)  # the fake knows every move title the template can render
