"""End to end into an object store: ``run_job`` writing ``s3://bucket/out`` on a real S3-compatible
server on loopback (moto), from Ray workers, with a scripted teacher over real HTTP; resumed;
read back with ``datasets`` through fsspec and with ``mathsynth show`` / ``stats``."""

from __future__ import annotations

from pathlib import Path

import datasets
import fsspec
import pytest

from orchestrator.core.records import normalize_question
from orchestrator.engine.driver import run_job
from orchestrator.output.stats import funnel
from orchestrator.output.store import OutputStore
from tests.support import s3_server as s3
from tests.support.cli import run_cli
from tests.support.configs import make_config
from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply

s3_server, s3_env, s3_bucket = s3.s3_server, s3.s3_env, s3.s3_bucket  # fixtures
pytestmark = pytest.mark.usefixtures("ray_local")


def test_run_into_s3_resumes_and_loads(
    tmp_path: Path, seeds: list, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a run that wrote locally by mistake would leave files here
    url = f"s3://{s3_bucket}/datasets/out"
    with ScriptedServer(reply=tinygsm_reply) as srv:
        cfg = make_config(srv.base_url)
        first = run_job(cfg, seeds[:4], url)
        assert srv.request_count == 4
        second = run_job(cfg, seeds, url)  # 4 finished + 6 new
        assert srv.request_count == 10
        third = run_job(cfg, seeds, url)  # everything finished: no teacher request
        assert srv.request_count == 10
    assert list(tmp_path.iterdir()) == []
    assert second["seeds_skipped_already_finished"] == 4
    assert third["seeds_skipped_already_finished"] == len(seeds) and third["requests"] == 0
    assert first["rows_written"] > 0
    total = first["rows_written"] + second["rows_written"]
    assert third["rows_total"] == total
    # the objects Ray workers wrote: shards, rejected rows, manifests, summary; no temp object
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    keys = [k.removeprefix(f"{s3_bucket}/datasets/out/") for k in fs.find(f"{s3_bucket}/datasets")]
    assert {"README.md", "summary.json", "_mathsynth/run.json"} <= set(keys)
    assert not any("tmp" in k for k in keys)
    store = OutputStore(url)
    assert store.read_json("summary.json") == third
    files = store.committed_files()
    assert len(files) == third["shards_total"] - len(store.storage.glob("_mathsynth/commits", "*"))
    # read back through fsspec with `datasets`, as a trainer would
    uris = [store.uri(f) for f in files]
    assert all(u.startswith(f"s3://{s3_bucket}/datasets/out/data/train-") for u in uris)
    ds = datasets.load_dataset("parquet", data_files=uris, split="train",
                               cache_dir=str(tmp_path / "hf-cache"))  # fmt: skip
    assert ds.num_rows == total
    assert len(set(ds["id"])) == total  # no row written twice across the resumed runs
    keys_q = [normalize_question(q) for q in ds["question"]]
    assert len(keys_q) == len(set(keys_q))  # dedup held across runs
    assert {s.id for s in seeds} >= set(ds["seed_id"])
    info = funnel(url)
    assert info["rows"] == total and sum(info["seeds"].values()) == len(seeds)
    dropped = sum(store.read_table(f).num_rows for f in store.files("rejected"))
    assert info["dropped"] == dropped > 0


def test_show_and_stats_read_a_url(
    tmp_path: Path, seeds: list, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"s3://{s3_bucket}/out"
    with ScriptedServer(reply=tinygsm_reply) as srv:
        summary = run_job(make_config(srv.base_url), seeds[:3], url)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    code, text = run_cli("show", url, "--rows", "1", timeout=120)
    assert code == 0, text
    assert f"{summary['rows_total']} rows" in text
    code, text = run_cli("stats", url, timeout=120)
    assert code == 0, text
    assert f"rows kept: {summary['rows_total']}" in text
    code, text = run_cli("stats", f"s3://{s3_bucket}/nothing-here", timeout=120)
    assert code == 2 and "not a mathsynth output" in text


def test_run_refuses_an_unusable_out_before_starting_anything() -> None:
    code, text = run_cli("run", "tinygsm", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                         "--out", "memory://out", "--no-progress", timeout=120)  # fmt: skip
    assert code == 2 and "unsupported storage" in text
