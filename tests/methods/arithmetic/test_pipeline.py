"""The arithmetic pipeline end to end on a real local Ray (no teacher): shard-descriptor seeds,
exact answers in parquet, reproducible output, resume, and a larger size only adds shards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pytest

from orchestrator.cli.app import build_config
from orchestrator.core.config import PipelineConfig
from orchestrator.core.records import normalize_question
from orchestrator.engine.driver import run_job
from orchestrator.methods.arithmetic.pipeline import make_seeds
from tests.methods.arithmetic.checks import check_solution, expected_answer, read_question
from tests.support.output import check_dataset, rows

pytestmark = pytest.mark.usefixtures("ray_local")


def make_config(**section: Any) -> PipelineConfig:
    overrides = {
        "run": {"workers": 2, "commit_every_seeds": 2, "final_commit_rows": 500},
        "arithmetic": {"size": 3000, "items_per_shard": 250, **section},
    }
    cfg, builtin = build_config("arithmetic", overrides)
    assert not builtin and cfg.teacher is None
    return cfg


def test_arithmetic_end_to_end(tmp_path: Path) -> None:
    cfg = make_config()
    seeds = make_seeds(cfg)
    assert len(seeds) == 12 and sum(s.meta["count"] for s in seeds) == 3000
    summary = run_job(cfg, seeds, tmp_path / "a")
    assert summary["seeds_accepted"] == 12 and summary["requests"] == 0
    written = rows(tmp_path / "a")
    assert len(written) == 3000 - summary["duplicates"] and summary["duplicates"] < 30
    assert datasets.load_dataset(
        str(tmp_path / "a"), split="train", cache_dir=str(tmp_path / "hf-cache")
    ).num_rows == len(written)
    assert check_dataset(tmp_path / "a", tmp_path / "hf-check")["data"] > 1
    for row in written:
        op, a, b = read_question(row["question"])
        assert row["answer"] == row["gold_answer"] == expected_answer(op, a, b)
        check_solution(row["solution"], op, a, b, row["answer"])
        assert row["messages"][1]["content"] == row["solution"]
        meta = row["meta"]
        assert (meta["a"], meta["b"]) == (str(a), str(b)) and row[
            "method"
        ] == f"arithmetic/{meta['task']}"
    keys = [normalize_question(r["question"]) for r in written]
    assert len(keys) == len(set(keys))

    # the same seed gives the same set, in another directory, by other workers
    cfg1 = make_config().model_copy(update={"run": cfg.run.model_copy(update={"workers": 1})})
    run_job(cfg1, make_seeds(cfg1), tmp_path / "b")
    pairs = {(r["question"], r["answer"]) for r in written}
    assert {(r["question"], r["answer"]) for r in rows(tmp_path / "b")} == pairs

    # resume: nothing left to do; a larger size only generates the new shards
    again = run_job(cfg, seeds, tmp_path / "a")
    assert again["seeds_skipped_already_finished"] == 12 and again["rows_written"] == 0
    bigger = make_config(size=3500)
    more = run_job(bigger, make_seeds(bigger), tmp_path / "a", allow_config_change=True)
    assert more["seeds_skipped_already_finished"] == 12 and more["seeds_accepted"] == 2
    assert len(rows(tmp_path / "a")) == len(written) + more["rows_written"] > len(written)
