"""``mathsynth stats``: the funnel on disk agrees with the run's own summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.seeds import load_seeds
from orchestrator.engine.driver import run_job
from orchestrator.output.stats import funnel, rejected_rows
from tests.support.cli import run_cli
from tests.support.configs import make_config
from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply

pytestmark = pytest.mark.usefixtures("ray_local")


def test_funnel_matches_summaries_across_resumed_runs(tmp_path: Path, gsm8k_train: Path) -> None:
    out = tmp_path / "out"
    seeds = load_seeds(str(gsm8k_train), make_config("http://x").seeds, limit=6)
    with ScriptedServer(reply=tinygsm_reply) as srv:
        cfg = make_config(srv.base_url)
        first = run_job(cfg, seeds[:3], out)
        second = run_job(cfg, seeds, out)
    info = funnel(out)
    assert info["rows"] == first["rows_written"] + second["rows_written"]
    assert sum(info["seeds"].values()) == 6
    for reason in set(first["rejected_by_reason"]) | set(second["rejected_by_reason"]):
        stage, _, why = reason.partition(":")
        expected = first["rejected_by_reason"].get(reason, 0) + second["rejected_by_reason"].get(
            reason, 0
        )
        if why.startswith("parse:"):  # reply-level problems have no row to store
            continue
        assert info["dropped_by_stage"][stage][why] == expected
    dups = rejected_rows(out, "dedup", 10)
    assert dups and all(r["reject_detail"] for r in dups)  # each names the id it duplicates
    code, text = run_cli("stats", str(out), "--reason", "dedup", timeout=60)
    assert code == 0 and "duplicate" in text and f"rows kept: {info['rows']}" in text
