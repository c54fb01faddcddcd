"""Seeds rejected only for ``length`` (replies cut by ``max_tokens`` at the largest budget):
final on resume, asked again with ``retry_length_rejected`` after raising the budget. Whole
engine on the session Ray, real HTTP to the scripted teacher (it cuts replies to ``max_tokens``
words), real parquet."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.records import Record
from orchestrator.engine.driver import run_job
from orchestrator.output.length_rejected import length_rejected
from orchestrator.output.store import OutputStore
from tests.support.configs import make_config
from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply


@pytest.mark.usefixtures("ray_local")
def test_length_rejected_seeds_are_final_until_asked_again(
    tmp_path: Path, seeds: list[Record]
) -> None:
    seeds = seeds[:4]
    out = tmp_path / "out"
    with ScriptedServer(reply=tinygsm_reply) as srv:
        cfg = make_config(srv.base_url)
        assert cfg.teacher is not None
        cfg.teacher.on_length, cfg.teacher.length_max_tokens = "retry", 60
        cfg.tinygsm.sampling.max_tokens = 30
        first = run_job(cfg, seeds, out)
        assert first["seeds_rejected"] == len(seeds)
        assert first["rejected_by_reason"] == {"one_step:length": len(seeds)}
        store = OutputStore(out)
        assert length_rejected(store, store.read_ledger().outcomes) == {s.id for s in seeds}

        # resumed with the same budget: final, like any rejection (no request is sent)
        sent = srv.request_count
        again = run_job(cfg, seeds, out)
        assert srv.request_count == sent and again["seeds_skipped_already_finished"] == 4

        # the budget raised and the seeds asked for again: they fit now
        cfg.teacher.length_max_tokens = 8192
        retried = run_job(cfg, seeds, out, retry_length_rejected=True)
        asked = srv.requests[sent:]
    assert retried["seeds_skipped_already_finished"] == 0
    assert retried["seeds_accepted"] == len(seeds) and retried["rows_written"] > 0
    assert max(r["max_tokens"] for r in asked) > 60
    ledger = OutputStore(out).read_ledger()
    assert {ledger.outcomes[s.id] for s in seeds} == {"accepted"}
    assert length_rejected(OutputStore(out), ledger.outcomes) == set()
