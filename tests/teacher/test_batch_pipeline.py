"""``teacher.kind: openai-batch`` end to end: the TinyGSM pipeline on a real local Ray, its
requests going through the scripted server's Batch API (files + batches over real HTTP), real
sandboxed execution and real parquet; and an interrupted batch run resumed without resubmitting.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from orchestrator.cli.app import build_config
from orchestrator.core.config import PipelineConfig
from orchestrator.core.records import normalize_question
from orchestrator.core.seeds import load_seeds
from orchestrator.engine.driver import run_job
from orchestrator.output.store import LEDGER_KEY
from tests.support.output import rows
from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply, unique_good_questions

pytestmark = pytest.mark.usefixtures("ray_local")


def make_config(base_url: str, kind: str = "openai-batch") -> PipelineConfig:
    overrides = {
        "teacher": {"kind": kind, "base_url": base_url, "model": "scripted", "max_attempts": 4,
                    "backoff_initial_s": 0.05, "backoff_max_s": 0.2, "read_timeout_s": 5,
                    "batch": {"collect_s": 0.5, "poll_s": 0.1}},
        "run": {"workers": 2, "concurrency": 4, "commit_every_seeds": 3},
        "tinygsm": {"problems_per_seed": 6},
        "decontamination": {"enabled": False},  # its benchmarks come from the hub
    }  # fmt: skip
    cfg, _ = build_config("tinygsm", overrides)
    return cfg


@pytest.fixture
def seeds(gsm8k_train: Path) -> list:
    return load_seeds(str(gsm8k_train), make_config("http://x").seeds, limit=10)


def committed_seeds(out: Path) -> collections.Counter[str]:
    """How many commits carry each seed's outcome (data-file footers + row-less commits)."""
    entries = [
        json.loads(pq.read_schema(f).metadata[LEDGER_KEY]) for f in (out / "data").glob("*.parquet")
    ]
    entries += [json.loads(f.read_text()) for f in (out / "_mathsynth" / "commits").glob("*.json")]
    return collections.Counter(seed for entry in entries for seed in entry["seeds"])


def test_batch_mode_writes_what_direct_mode_writes(tmp_path: Path, seeds: list) -> None:
    with ScriptedServer(reply=tinygsm_reply, batch_delay=0.2) as srv:
        direct = run_job(make_config(srv.base_url, kind="openai"), seeds, tmp_path / "direct")
        assert srv.request_count == len(seeds) and not srv.batches.counts()
        srv.reset_counts()
        batch = run_job(make_config(srv.base_url), seeds, tmp_path / "batch")
        counts = srv.batches.counts()
        prompts = [body["messages"][-1]["content"] for body in srv.requests]
    # every request went through a batch line; lines were collected (2 workers: 1-2 batches)
    assert srv.request_count == counts["lines_submitted"] == len(seeds) == batch["requests"]
    assert 1 <= counts["batches_created"] == counts["files_uploaded"] <= 2
    assert batch["seeds_failed"] == 0 and batch["seeds_not_run"] == 0
    for key in ("seeds_accepted", "seeds_rejected", "rows_written", "duplicates",
                "rejected_by_reason", "prompt_tokens", "completion_tokens"):  # fmt: skip
        assert batch[key] == direct[key], key
    keys = {normalize_question(r["question"]) for r in rows(tmp_path / "batch")}
    assert keys == {normalize_question(r["question"]) for r in rows(tmp_path / "direct")}
    assert keys == unique_good_questions(prompts)
    assert list((tmp_path / "batch" / "_mathsynth" / "batches").glob("batch_*.json"))


def test_interrupted_batch_run_resumes_without_resubmitting(tmp_path: Path, seeds: list) -> None:
    out = tmp_path / "out"
    with ScriptedServer(reply=tinygsm_reply, batch_delay=3.0) as srv:
        cfg = make_config(srv.base_url)

        def ctrl_c_once_submitted(view: dict[str, Any]) -> None:
            if srv.batches.counts().get("lines_submitted", 0) >= 6:
                raise KeyboardInterrupt  # what Ctrl-C does to the driver loop

        with pytest.raises(KeyboardInterrupt):
            run_job(cfg, seeds[:6], out, on_progress=ctrl_c_once_submitted, poll_s=0.1)
        assert set(srv.batches.statuses().values()) <= {"validating", "in_progress"}
        assert srv.request_count == 0 and not rows(out)  # nothing answered, nothing committed
        first = [cid for ids in srv.batches.batch_inputs for cid in ids]
        assert len(first) == 6
        recorded = [json.loads(p.read_text()) for p in (out / "_mathsynth/batches").glob("*.json")]
        assert sorted(c for r in recorded for c in r["custom_ids"]) == sorted(first)

        summary = run_job(cfg, seeds, out)  # the 6 interrupted seeds + 4 new ones
        later = [cid for ids in srv.batches.batch_inputs[len(recorded) :] for cid in ids]
        uploads = srv.batches.counts()["files_uploaded"]
    assert len(later) == 4 and not set(later) & set(first)  # only the new seeds' requests
    assert uploads == len(recorded) + len(srv.batches.batch_inputs[len(recorded) :])
    assert srv.request_count == len(seeds)  # every request answered exactly once
    assert summary["seeds_failed"] == 0 and summary["seeds_not_run"] == 0
    assert summary["seeds_accepted"] + summary["seeds_rejected"] == len(seeds)
    assert committed_seeds(out) == collections.Counter(s.id for s in seeds)
    written = rows(out)
    assert written and len({r["id"] for r in written}) == len(written)
