"""Leftovers of a private Ray whose driver was killed (``orchestrator.engine.ray_leftovers``):
the next run ends its lingering agents and removes its session dir. Real processes; the
end-to-end test kills a real ``mathsynth run`` (its own Ray) with SIGKILL and runs again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from orchestrator.core.resources import data_dir
from orchestrator.engine import ray_leftovers
from tests.support.faults import wait_for_shards
from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply

ROOT = Path(__file__).resolve().parents[2]
RAY_TMP = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray"


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"])


def entry(pid: int) -> dict[str, int]:
    start = ray_leftovers._start_time(pid)
    assert start is not None
    return {"pid": pid, "start": start}


def test_sweep_ends_what_a_dead_driver_left_and_nothing_else(tmp_path: Path) -> None:
    driver, agent, stranger = sleeper(), sleeper(), sleeper()
    try:
        ours = tmp_path / "session_2026-01-01_00-00-00_1_1"
        ours.mkdir()
        marker = {"driver": entry(driver.pid), "processes": [entry(agent.pid)]}
        (ours / ray_leftovers.MARKER).write_text(json.dumps(marker))
        theirs = tmp_path / "session_2026-01-01_00-00-01_2_2"  # no marker: not ours
        theirs.mkdir()
        assert ray_leftovers.sweep(tmp_path) == ([], [])  # the driver still runs
        assert agent.poll() is None and ours.exists()
        driver.kill()
        driver.wait()
        killed, removed = ray_leftovers.sweep(tmp_path)
        assert killed == [agent.pid] and removed == [str(ours)]
        assert agent.wait(timeout=10) == -signal.SIGKILL
        assert not ours.exists() and theirs.exists() and stranger.poll() is None
    finally:
        for proc in (driver, agent, stranger):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_reused_pid_is_not_killed(tmp_path: Path) -> None:
    """A recorded pid whose start time differs is another process now: left alone."""
    other = sleeper()
    try:
        session = tmp_path / "session_x"
        session.mkdir()
        stale = {"pid": other.pid, "start": entry(other.pid)["start"] - 1}
        dead_driver = {"pid": 2**22 + 1, "start": 1}
        marker = {"driver": dead_driver, "processes": [stale]}
        (session / ray_leftovers.MARKER).write_text(json.dumps(marker))
        assert ray_leftovers.sweep(tmp_path) == ([], [str(session)])
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def marker_of(driver_pid: int, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in RAY_TMP.glob(f"session_*/{ray_leftovers.MARKER}"):
            if path.parent.is_symlink():  # session_latest
                continue
            try:
                if json.loads(path.read_text())["driver"]["pid"] == driver_pid:
                    return path
            except (OSError, ValueError, KeyError):
                continue
        time.sleep(0.2)
    raise AssertionError(f"no {ray_leftovers.MARKER} for driver {driver_pid}")


def test_a_killed_runs_agents_and_session_are_gone_after_the_next_run(
    tmp_path: Path, gsm8k_train: Path
) -> None:
    pipeline = yaml.safe_load((data_dir("pipelines") / "tinygsm.yaml").read_text())
    pipeline["run"].update({"workers": 1, "concurrency": 2, "commit_every_seeds": 2})
    pipeline["decontamination"]["enabled"] = False
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipeline))
    out = tmp_path / "out"
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    recorded: list[dict[str, int]] = []
    with ScriptedServer(reply=tinygsm_reply, latency=0.5, model="s") as srv:
        cmd = [sys.executable, "-m", "orchestrator", "run", str(tmp_path / "p.yaml"),
               "--seeds", str(gsm8k_train), "--limit", "12", "--out", str(out),
               "--base-url", srv.base_url, "--model", "s", "--no-progress"]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            marker = marker_of(proc.pid)
            recorded = json.loads(marker.read_text())["processes"]
            assert recorded, "the marker lists the Ray processes the driver started"
            assert wait_for_shards(out, 1, timeout=120), "no shard committed"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            time.sleep(2)  # Ray's fate-sharing processes go; its agents linger
            lingering = [e["pid"] for e in recorded if ray_leftovers._running(e)]
            rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                   timeout=240)  # fmt: skip
            assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
            still = [e["pid"] for e in recorded if ray_leftovers._running(e)]
            assert still == [], f"left running after the next run: {still}"
            assert not marker.parent.exists(), "the killed run's session dir is still there"
            print(f"killed driver: {len(lingering)} Ray processes lingered, 0 after the next run")
        finally:
            if proc.poll() is None:
                proc.kill()
            for e in recorded:  # whatever is left is ended by id (not by name)
                if ray_leftovers._running(e):
                    os.kill(e["pid"], signal.SIGKILL)
