"""TinyGSM verifier data end to end: labelled candidate programs land in the verifier split."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from orchestrator.core.records import Record
from orchestrator.core.seeds import load_seeds
from orchestrator.engine.driver import run_job
from orchestrator.methods.tinygsm.execute import RunProgram
from orchestrator.quality.verify import answers_equal
from orchestrator.sandbox import Sandbox
from tests.support.configs import make_config
from tests.support.output import check_dataset
from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply

pytestmark = pytest.mark.usefixtures("ray_local")


def test_verifier_split_labels_every_candidate(tmp_path: Path, gsm8k_train: Path) -> None:
    out = tmp_path / "out"
    seeds = load_seeds(str(gsm8k_train), make_config("http://x").seeds, limit=4)
    no_gold = Record.seed(
        "Tom has 3 bags with 4 apples each and eats 2. How many apples?", None, "t"
    )
    with ScriptedServer(reply=tinygsm_reply) as srv:
        cfg = make_config(srv.base_url, verifier={"enabled": True, "samples": 3})
        summary = run_job(cfg, [*seeds, no_gold], out)
        # one-step call per seed plus 3 candidate-program calls per seed
        assert srv.request_count == 5 * (1 + 3)
    rows = [
        r
        for f in sorted((out / "verifier").glob("*.parquet"))
        for r in pq.read_table(f).to_pylist()
    ]
    assert len(rows) == 5 * 3 and summary["rows_written"] > 0
    shards = check_dataset(out, tmp_path / "hf-check")  # chat form on verifier rows too
    assert shards["verifier"] > 1 and shards["data"] > 1
    sandbox, judge = Sandbox(cfg.sandbox), RunProgram(1e15)
    gold = {s.id: s.gold_answer for s in seeds}
    for row in rows:
        assert row["method"] == "tinygsm/verifier" and row["label"] is not None
        probe = Record(id="p", question=row["question"], code=row["code"])
        ok = judge.judge(probe, sandbox.run_sync(judge.program(probe))) is None
        reference = gold.get(row["seed_id"])
        if reference is None:  # no gold: the candidates' majority answer is the reference
            assert row["meta"]["reference_source"].startswith("majority")
            reference = probe.answer
        assert row["label"] == (ok and answers_equal(probe.answer, reference))
    # verifier rows never enter the train split
    train_ids = {
        r
        for f in (out / "data").glob("*.parquet")
        for r in pq.read_table(f).column("id").to_pylist()
    }
    assert not train_ids & {r["id"] for r in rows}
