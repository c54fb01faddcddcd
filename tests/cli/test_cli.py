"""The ``mathsynth`` command as a user runs it: a real subprocess, real Ray, real HTTP."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from orchestrator.core.resources import data_dir
from orchestrator.output.store import OutputStore
from tests.support.cli import cli, run_cli
from tests.support.faults import commit_files, logged_seeds
from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply


def test_pipelines_lists_builtin() -> None:
    code, out = run_cli("pipelines", timeout=60)
    assert code == 0 and "tinygsm" in out


def test_bad_pipeline_file_is_reported_with_line(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text(
        "name: x\nteacher:\n  model: m\n  base_url: http://127.0.0.1:9/v1\nrun:\n  wrkers: 2\n"
    )
    code, out = run_cli("run", str(bad), "--seeds", "demo.jsonl", "--out", str(tmp_path / "o"))
    assert code == 2
    assert f"{bad}:6" in out.replace("\n", "") and "wrkers" in out


def test_bad_seed_file_is_reported_with_line(tmp_path: Path) -> None:
    seeds = tmp_path / "s.jsonl"
    seeds.write_text('{"question": "What is 1 + 2 + 3 + 4 + 5 + 6?"}\nnot json\n')
    code, out = run_cli("run", "tinygsm", "--seeds", str(seeds), "--out", str(tmp_path / "o"),
                        "--base-url", "http://127.0.0.1:9/v1", "--model", "m")  # fmt: skip
    assert code == 2 and f"{seeds}:2" in out.replace("\n", "")
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_ctrl_c_leaves_output_consistent_and_rerun_resumes(
    tmp_path: Path, gsm8k_train: Path
) -> None:
    pipeline = yaml.safe_load((data_dir("pipelines") / "tinygsm.yaml").read_text())
    pipeline["run"].update({"workers": 1, "concurrency": 2, "commit_every_seeds": 2})
    pipeline["decontamination"]["enabled"] = False  # its benchmarks come from the hub
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipeline))
    out = tmp_path / "out"
    n_seeds = 24
    with ScriptedServer(reply=tinygsm_reply, latency=0.3, model="s") as srv:
        args = ("run", str(tmp_path / "p.yaml"), "--seeds", str(gsm8k_train), "--limit",
                str(n_seeds), "--out", str(out), "--base-url", srv.base_url, "--model", "s",
                "--no-progress")  # fmt: skip
        proc = cli(*args)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(commit_files(out)) < 2:
            time.sleep(0.2)
        assert proc.poll() is None, "run finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=90)
        assert proc.returncode == 130, output
        first_requests = srv.request_count
        # consistent: every committed file reads whole, no temp files, ledger names real seeds
        store = OutputStore(out)
        assert not list(store.tmp.glob("*"))
        for f in store.committed_files():
            pq.read_table(f)
        finished = store.read_ledger().finished
        assert 0 < len(finished) < n_seeds
        summary = json.loads((out / "summary.json").read_text())
        assert summary["interrupted"] is True
        # the interrupted run's outcomes are what its commits recorded
        recorded = OutputStore(out).read_ledger().outcomes
        ran = summary["seeds_accepted"] + summary["seeds_rejected"] + summary["seeds_failed"]
        assert ran == len(recorded) and summary["state"] == "interrupted"
        # re-running the same command asks the teacher only about seeds without a reply yet
        answered = logged_seeds(out)  # in the reply log, committed or not
        assert answered >= finished
        code, output = run_cli(*args)
        assert code == 0, output
        assert srv.request_count - first_requests == n_seeds - len(answered)
    final = json.loads((out / "summary.json").read_text())
    assert final["seeds_skipped_already_finished"] == len(finished)
    assert final["seeds_not_run"] == 0 and final["seeds_failed"] == 0
    ledger = OutputStore(out).read_ledger()
    assert len(ledger.finished) == n_seeds
    ids = [
        r
        for f in OutputStore(out).committed_files()
        for r in pq.read_table(f, columns=["id"]).column("id").to_pylist()
    ]
    assert len(ids) == len(set(ids)) == final["rows_total"]


def test_every_builtin_pipeline_starts_from_the_command_line(tmp_path: Path) -> None:
    """A pipeline without a section the CLI overrides (e.g. `tinygsm:`) still validates."""
    code, out = run_cli("run", "arithmetic", "--limit", "2", "--out", str(tmp_path / "a"),
                        "--no-progress")  # fmt: skip
    assert code == 0, out
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["rows_written"] > 0
    for name in ("skywork", "mumath_code", "tinygsm"):
        code, out = run_cli("run", name, "--seeds", "demo.jsonl", "--model", "m", "--dry-run",
                            "--base-url", "http://127.0.0.1:9/v1")  # fmt: skip
        assert code == 0 and "no request sent" in " ".join(out.split()), (name, out)
        requests = next(ln for ln in out.splitlines() if "│ requests " in ln)
        assert int(requests.split("│")[2]) > 0, (name, out)


def test_a_second_run_into_the_same_out_is_refused_while_the_first_runs(
    tmp_path: Path, gsm8k_train: Path
) -> None:
    """Each run starts its own private Ray, so only the output's lock can tell them apart."""
    pipeline = yaml.safe_load((data_dir("pipelines") / "tinygsm.yaml").read_text())
    pipeline["run"].update({"workers": 1, "concurrency": 2, "commit_every_seeds": 2})
    pipeline["decontamination"]["enabled"] = False
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipeline))
    out, n_seeds = tmp_path / "out", 12
    with ScriptedServer(reply=tinygsm_reply, latency=0.3, known_models=["s"]) as srv:
        args = ("run", str(tmp_path / "p.yaml"), "--seeds", str(gsm8k_train), "--limit",
                str(n_seeds), "--out", str(out), "--base-url", srv.base_url, "--model", "s",
                "--no-progress")  # fmt: skip
        first = cli(*args)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and srv.request_count == 0:
            time.sleep(0.1)
        assert first.poll() is None and srv.request_count > 0
        code, output = run_cli(*args)
        message = " ".join(output.split())  # the console may wrap it
        assert code == 2 and "is being written by another run" in message, output
        assert f"pid {first.pid}" in message
        first_output, _ = first.communicate(timeout=180)
        assert first.returncode == 0, first_output
        assert srv.request_count == n_seeds  # the refused run sent nothing
    assert not (out / "_mathsynth" / "lock.json").exists()
    ledger = OutputStore(out).read_ledger()
    assert len(ledger.finalized) == n_seeds
