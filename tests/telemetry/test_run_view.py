"""The views a real run reports (local Ray, real HTTP to a scripted teacher, real sandbox and
parquet): rows waiting to be committed are their own number, the sandbox's load is there, and
the funnel's filter groups add up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.driver import run_job
from tests.support.configs import make_config
from tests.support.scripted_server import Fault, ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply

pytestmark = pytest.mark.usefixtures("ray_local")


@pytest.mark.timeout(240)
def test_views_show_pending_commits_sandbox_load_and_one_count_per_filter_group(
    tmp_path: Path, seeds: list
) -> None:
    cfg = make_config("http://x")
    run = cfg.run.model_copy(update={"workers": 1, "commit_every_seeds": len(seeds)})
    views: list[dict[str, Any]] = []
    steps: list[str] = []
    with ScriptedServer(reply=tinygsm_reply) as srv:
        teacher = cfg.teacher.model_copy(update={"base_url": srv.base_url})  # type: ignore[union-attr]
        cfg = cfg.model_copy(update={"run": run, "teacher": teacher})
        # one seed's reply comes 4 s late: the chunk (every seed) commits only after it, so
        # the other seeds' rows wait, accepted but not yet durable
        srv.inject([Fault(kind="timeout", seconds=4)])
        summary = run_job(cfg, seeds, tmp_path / "out", on_progress=views.append, poll_s=0.25,
                          on_startup=steps.append)  # fmt: skip
    written = [int(v["counters"].get("writer", {}).get("rows", 0)) for v in views]
    pending = [int(v["gauges"].get("pending_commit", 0)) for v in views]
    waiting = [i for i, n in enumerate(pending) if n > 0]
    assert waiting, pending
    assert all(written[i] == 0 for i in waiting)  # pending, not written
    dropped_at_finalize = summary["rejected_by_reason"].get("near_dedup:near_duplicate", 0)
    assert max(pending) <= summary["rows_written"] + summary["duplicates"] + dropped_at_finalize
    assert summary["rows_written"] > 0
    assert views[-1]["state"] == "finished" and pending[-1] == 0
    assert written[-1] == summary["rows_written"]
    # the sandbox: its slots, programs seen queued or running, slot time used
    gauges = views[-1]["gauges"]
    assert gauges["sandbox_slots"] == cfg.run.sandbox_concurrency
    assert gauges["sandbox_busy_s"] > 0
    assert any(v["gauges"].get("sandbox_running", 0) + v["gauges"].get("sandbox_queued", 0) > 0
               for v in views)  # fmt: skip
    # the two question filters are one group: what enters is what the teacher stage made
    counters = views[-1]["counters"]
    group = counters["question_filter"]
    assert group["seen"] == counters["one_step"]["produced"]
    drops = sum(n for k, n in group.items() if k.startswith("dropped:"))
    assert group["seen"] == group["kept"] + drops
    assert counters["execute"]["seen"] == group["kept"]
    # counts are integers all the way from the workers
    assert all(isinstance(n, int) for names in counters.values() for k, n in names.items()
               if not k.endswith("_seconds"))  # fmt: skip
    # start-up steps, in order, before the first view
    assert steps[0] == "reading the output directory" and "connecting to Ray" in steps  # ray_local
    assert steps[-1] == "starting the job's actors"
