"""Whole runs with ``teacher.kind: vllm`` on CPU: the engine starts replica actors whose servers
are the scripted TinyGSM teacher (real subprocesses, real HTTP, real sandbox, real parquet); one
replica's server is SIGKILLed mid-run and the dataset must still hold every seed exactly once."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from orchestrator.cli.app import build_config
from orchestrator.core.resources import data_dir
from orchestrator.core.seeds import load_seeds
from orchestrator.engine.driver import FatalRunError, run_job
from orchestrator.output.store import OutputStore
from tests.teacher.replica_support import (
    ROOT,
    find_processes,
    has_established_tcp,
    replica_teacher,
    wait_for,
)

REPLY = "tests.support.tinygsm_teacher:tinygsm_reply"


def kill_first_busy_server(marker: str, killed: list[int], timeout: float = 120) -> None:
    """SIGKILL a replica server as soon as a client is connected to it (requests in flight)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not killed:
        for pid in find_processes("tests.support.scripted_server", marker):
            # connected twice 0.3 s apart: a worker's request (2 s), not a health probe (~1 ms)
            if has_established_tcp(pid) and not time.sleep(0.3) and has_established_tcp(pid):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.05)


def rows(out: Path) -> list[dict[str, Any]]:
    files = OutputStore(str(out)).committed_files()
    return [r for f in files for r in pq.read_table(f).to_pylist()]


@pytest.mark.usefixtures("ray_local")
def test_run_survives_a_replica_dying_mid_run(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex[:10]}"
    teacher = replica_teacher(2, latency=2.0, reply=REPLY, extra=["--model", marker])
    overrides = {
        "teacher": teacher,
        "run": {"workers": 2, "concurrency": 4, "commit_every_seeds": 2},
        "tinygsm": {"problems_per_seed": 4},
        "decontamination": {"enabled": False},
    }
    cfg, builtin = build_config("tinygsm", overrides)
    assert not builtin and cfg.teacher is not None and cfg.teacher.kind == "vllm"
    seeds = load_seeds("demo.jsonl", cfg.seeds)
    killed: list[int] = []
    killer = threading.Thread(target=kill_first_busy_server, args=(marker, killed), daemon=True)
    killer.start()
    loads: list[dict[str, float]] = []
    phases: list[list[str]] = []

    def seen(view: dict) -> None:
        loads.append(view.get("gauges", {}).get("replicas") or {})
        phases.append([r["phase"] for r in view.get("replica_states", [])])

    summary = run_job(cfg, seeds, tmp_path / "out", on_progress=seen, poll_s=0.2)
    killer.join(timeout=5)
    assert killed, "no replica server was killed"
    # the dashboard's per-replica load: workers' in-flight requests per replica URL reach the hub
    assert any(sum(load.values()) > 0 for load in loads), loads
    assert len({url for load in loads for url in load}) >= 2, loads
    # ... and each replica's phase from the supervisor: the killed one was shown restarting
    # (for a second or more: a new server process must start), and a healthy one served on
    assert any("restarting" in p and "healthy" in p for p in phases), phases
    # every seed accounted for, none failed: the dead replica's requests were re-sent
    assert summary["seeds_failed"] == 0 and summary["seeds_not_run"] == 0
    assert summary["seeds_accepted"] + summary["seeds_rejected"] == len(seeds)
    assert summary["requests"] == len(seeds)  # one-step: one completion per seed, no more
    info = summary["teacher_replicas"]
    assert info.get("resends", 0) >= 1, info
    assert sum(r["restarts"] for r in info["replicas"]) >= 1
    # none duplicated: unique row ids, each (seed, question) once, rows only from known seeds
    written = rows(tmp_path / "out")
    assert written and len(written) == summary["rows_total"]
    assert len({r["id"] for r in written}) == len(written)
    assert len({(r["seed_id"], r["question"]) for r in written}) == len(written)
    assert {r["seed_id"] for r in written} <= {s.id for s in seeds}
    assert len(OutputStore(str(tmp_path / "out")).read_ledger().finished) == len(seeds)
    # the replicas' servers end with the run (ray.kill is asynchronous: give it a moment)
    wait_for(lambda: not find_processes("tests.support.scripted_server", marker), 20, "servers")


@pytest.mark.usefixtures("ray_local")
def test_run_with_unstartable_replicas_stops_with_the_reason(tmp_path: Path) -> None:
    teacher = replica_teacher(1, max_restarts=0, extra=["--no-such-flag"])
    overrides = {"teacher": teacher, "decontamination": {"enabled": False}}
    cfg, _ = build_config("tinygsm", overrides)
    with pytest.raises(FatalRunError, match="(?s)teacher replicas did not start.*--no-such-flag"):
        run_job(cfg, load_seeds("demo.jsonl", cfg.seeds, 2), tmp_path / "out")


def cli(*args: str, timeout: float = 240) -> tuple[int, str]:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False,
    )  # fmt: skip
    return proc.returncode, proc.stdout


def test_cli_teacher_vllm_gpus_starts_one_replica_per_gpu(tmp_path: Path) -> None:
    """`mathsynth run ... --teacher vllm --model M --gpus 2` (the launcher swapped for the
    scripted server and no GPU reserved, which is all that differs from a GPU machine)."""
    pipeline = yaml.safe_load((data_dir("pipelines") / "tinygsm.yaml").read_text())
    section = replica_teacher(1, latency=0.1, reply=REPLY)
    pipeline["teacher"]["replica"] = section["replica"]
    pipeline["run"].update({"workers": 1, "concurrency": 4, "commit_every_seeds": 4})
    pipeline["decontamination"]["enabled"] = False
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipeline))
    out = tmp_path / "out"
    code, output = cli("run", str(tmp_path / "p.yaml"), "--teacher", "vllm", "--model", "scripted",
                       "--gpus", "2", "--seeds", "demo.jsonl", "--limit", "6", "--out", str(out),
                       "--no-progress")  # fmt: skip
    assert code == 0, output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds_failed"] == 0 and summary["rows_total"] > 0
    replicas = summary["teacher_replicas"]["replicas"]
    assert len(replicas) == 2 and all(r["url"] for r in replicas)
    sent = {k: v for k, v in summary["teacher_replicas"].items() if k.startswith("sent:")}
    assert sum(sent.values()) == 6 and len(sent) == 2  # both replicas served


def test_cli_rejects_vllm_without_a_model_and_gpus_without_vllm(tmp_path: Path) -> None:
    code, output = cli("run", "tinygsm", "--teacher", "vllm", "--out", str(tmp_path / "o"))
    assert code == 2 and "needs the model to serve (--model)" in " ".join(output.split())
    code, output = cli("run", "tinygsm", "--model", "m", "--gpus", "2", "--out", str(tmp_path))
    assert code == 2 and "--teacher vllm" in " ".join(output.split())


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_cli_without_vllm_says_how_to_install_it(tmp_path: Path) -> None:
    code, output = cli("run", "tinygsm", "--teacher", "vllm", "--model", "Qwen/Qwen2.5-0.5B",
                       "--gpus", "1", "--seeds", "demo.jsonl", "--out", str(tmp_path / "o"),
                       "--no-progress", timeout=120)  # fmt: skip
    text = " ".join(output.split())
    assert code == 1 and "vLLM, which is not installed" in text, output
    assert "pip install 'mathsynth[vllm]'" in text


PLACEMENT_CHILD = """
import json, time, ray
from orchestrator.teacher.pool import ReplicaPool
from tests.teacher.replica_support import settings
ray.init(address="local", num_cpus=2, resources={"teacher": 1}, include_dashboard=False,
         _node_ip_address="127.0.0.1", logging_level="ERROR", log_to_driver=False)
with ReplicaPool(settings(replicas=2, resources={"teacher": 1})) as pool:
    time.sleep(3)  # time enough for the second replica, if it could be placed
    print("STATUS " + json.dumps([s["phase"] for s in pool.status()]))
    print("FREE " + json.dumps(ray.available_resources().get("teacher", 0.0)))
ray.shutdown()
"""


def test_replicas_reserve_their_custom_resource() -> None:
    """A Ray of its own (child process) with one `teacher` unit: of two replicas asking for
    `{teacher: 1}` one runs and holds the unit, the other waits to be placed."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-c", PLACEMENT_CHILD], cwd=ROOT, env=env, text=True,
        capture_output=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = dict(ln.split(" ", 1) for ln in proc.stdout.splitlines() if " " in ln)
    assert sorted(json.loads(lines["STATUS"])) == ["healthy", "starting"]
    assert json.loads(lines["FREE"]) == 0.0
