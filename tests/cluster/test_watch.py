"""``mathsynth watch`` as a user runs it (a real subprocess): following an output directory's
progress file, and a Ray job on a real head started here (its dashboard, the Jobs API, token
authentication, and the metrics hub's export to Ray's Prometheus endpoint).

The head is a child process of this test (``ray start --head --block``) on loopback with its own
ports, temp dir and auth token; it is ended by killing that process group, never ``ray stop``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.output.store import OutputStore
from orchestrator.telemetry.metrics import hub_name
from orchestrator.telemetry.progress import ProgressFile
from tests.telemetry.test_progress import view

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")


def env(**extra: str) -> dict[str, str]:
    base = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1"}
    for name in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        base.pop(name, None)
    return {**base, **extra}


def watch(*args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``mathsynth watch``; stderr comes back with rich's line wrapping undone."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "watch", *args], cwd=ROOT, env=env(**extra),
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    done.stderr = " ".join(done.stderr.split())
    return done


def watching(out: Path) -> tuple[ProgressFile, subprocess.Popen[str]]:
    """A progress file with a first view in it, and ``mathsynth watch OUT --json`` on it."""
    progress = ProgressFile(OutputStore(out), every_s=0)
    progress.update(view())
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "watch", str(out), "--json"],
        cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    return progress, proc


def test_watch_output_dir_follows_the_progress_file(tmp_path: Path) -> None:
    progress, proc = watching(tmp_path / "out")
    assert proc.stdout is not None
    try:
        first = json.loads(proc.stdout.readline())
        later = view(time=1005.0)
        later["counters"]["writer"]["rows"] = 30
        progress.update(later)  # the driver moved on: watch shows it
        second = json.loads(proc.stdout.readline())
        progress.update(view(time=1009.0, state="finished", summary={"rows_written": 31}))
        rest = [json.loads(line) for line in proc.stdout]
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    rows = [e["counters"]["writer"]["rows"] for e in [first, second, rest[0]]]
    assert rows == [18, 30, 18] and rest[0]["state"] == "finished"
    assert rest[1:] == [{"event": "summary", "schema": 1, "summary": {"rows_written": 31}}]


def test_watch_output_dir_shows_every_version_of_the_file(tmp_path: Path) -> None:
    """A view written is shown on watch's next poll (0.5 s): versions 0.9 s apart are all
    shown, in order (a 1 s poll, or a display throttle on top of it, skips some)."""
    progress, proc = watching(tmp_path / "out")
    assert proc.stdout is not None
    try:
        json.loads(proc.stdout.readline())  # watch is up and has shown the first version
        for i in range(1, 11):
            later = view(time=1000.0 + i)
            later["counters"]["writer"]["rows"] = 18 + i
            progress.update(later)
            time.sleep(0.9)
        progress.update(view(time=1020.0, state="finished"))
        rest = [json.loads(line) for line in proc.stdout]
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    rows = [e["counters"]["writer"]["rows"] for e in rest if e["state"] == "running"]
    assert rows == [18 + i for i in range(1, 11)]


def test_progress_file_keeps_up_with_the_drivers_poll(tmp_path: Path) -> None:
    """By default the driver's view (every 0.5 s) reaches the file every time."""
    store = OutputStore(tmp_path)
    writer = ProgressFile(store)
    writer.update(view())
    time.sleep(0.5)
    writer.update(view(time=1000.5, skipped=5))
    assert store.read_json("_mathsynth/progress.json")["skipped"] == 5


def test_watch_output_dir_plain_lines_and_exit_code_of_a_failed_run(tmp_path: Path) -> None:
    store = OutputStore(tmp_path / "out")
    ProgressFile(store).update(view(state="failed", summary={"seeds_failed": 1}))
    done = watch(str(tmp_path / "out"))  # stdout/stderr are pipes: no live panel
    assert done.returncode == 1
    assert "[progress] failed seeds 7/10 written 18 pending_commit 9 requests 7" in done.stderr
    assert re.search(r"seeds\s+failed\s+1\b", done.stdout), done.stdout  # the summary table


def test_watch_output_dir_exit_code_of_a_run_with_failed_seeds(tmp_path: Path) -> None:
    """A run that finished with failed seeds exited 1 (``mathsynth run``): so does watch."""
    store = OutputStore(tmp_path / "out")
    ProgressFile(store).update(view(state="finished", summary={"seeds_failed": 2}))
    assert watch(str(tmp_path / "out")).returncode == 1
    ProgressFile(store).update(view(time=1010.0, state="finished", summary={"seeds_failed": 0}))
    assert watch(str(tmp_path / "out")).returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_head(token: str, temp: str) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    ports = {name: free_port() for name in ("gcs", "dash", "client", "agent", "metrics")}
    head_env = env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token,
                   RAY_metrics_report_interval_ms="1000")  # fmt: skip
    proc = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={ports['gcs']}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={ports['dash']}", f"--ray-client-server-port={ports['client']}",
         f"--dashboard-agent-listen-port={ports['agent']}",
         f"--metrics-export-port={ports['metrics']}", "--num-cpus=2", f"--temp-dir={temp}",
         "--disable-usage-stats"],
        env=head_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    return proc, ports


def _stop_head(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _takes_jobs(address: str, token: str, proc: subprocess.Popen[bytes], wait_s: float) -> str:
    """Submit a no-op job until the head accepts it: the dashboard answers before its job agent
    does (and an agent whose port was taken meanwhile never comes). '' once accepted, else why."""
    from ray.job_submission import JobSubmissionClient

    deadline, why = time.monotonic() + wait_s, "no answer"
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            client = JobSubmissionClient(address, headers={"Authorization": f"Bearer {token}"})
            client.submit_job(entrypoint="true")
            return ""
        except Exception as err:  # noqa: BLE001 (not up yet: connection refused, 500, ...)
            why = str(err)[-300:]
            time.sleep(1)
    return why if proc.poll() is None else f"`ray start` exited {proc.returncode}"


@pytest.fixture(scope="module")
def ray_head() -> Iterator[dict[str, str]]:
    if not RAY.exists():
        pytest.skip("the ray CLI is not installed next to this python")
    token = secrets.token_hex(16)
    temp = tempfile.mkdtemp(prefix="rw", dir="/tmp")  # short: Ray's socket paths are limited
    proc, ports = _start_head(token, temp)
    try:
        why = _takes_jobs(f"http://127.0.0.1:{ports['dash']}", token, proc, 90)
        if why:  # once more on fresh ports (a port picked here can be taken before Ray binds it)
            _stop_head(proc)
            proc, ports = _start_head(token, temp)
            why = _takes_jobs(f"http://127.0.0.1:{ports['dash']}", token, proc, 90)
        if why:
            pytest.fail(f"the Ray head did not take jobs: {why}")
        yield {"address": f"http://127.0.0.1:{ports['dash']}", "token": token,
               "metrics": str(ports["metrics"]), "gcs": f"127.0.0.1:{ports['gcs']}"}  # fmt: skip
    finally:
        _stop_head(proc)
        shutil.rmtree(temp, ignore_errors=True)


def submit(head: dict[str, str], *args: str) -> str:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(
        head["address"], headers={"Authorization": f"Bearer {head['token']}"}
    )
    script = ROOT / "tests" / "support" / "job_events.py"
    return client.submit_job(entrypoint=f"{sys.executable} {script} {' '.join(args)}")


@pytest.mark.timeout(240)
def test_watch_job_renders_the_drivers_events_until_it_ends(ray_head: dict[str, str]) -> None:
    job = submit(ray_head, "--steps", "6", "--interval", "0.7")
    done = watch(job, "--address", ray_head["address"], "--json", RAY_AUTH_TOKEN=ray_head["token"])
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    rows = [e["counters"]["writer"]["rows"] for e in progress]
    assert rows == sorted(rows) and rows[-1] == 18 and len(set(rows)) >= 2  # numbers moved
    assert progress[-1]["state"] == "finished"
    assert events[-1] == {"event": "summary", "schema": 1,
                          "summary": {"rows_written": 18, "seeds_accepted": 6}}  # fmt: skip
    # the same job watched again after it ended, as a human would: plain lines + summary table
    again = watch(job, "--address", ray_head["address"], RAY_AUTH_TOKEN=ray_head["token"])
    assert again.returncode == 0, again.stderr
    assert "[progress] finished seeds 6/6 written 18" in again.stderr
    assert "job driver starting" in again.stderr and "written by this run" in again.stdout


@pytest.mark.timeout(300)
def test_watch_a_real_mathsynth_run_job(ray_head: dict[str, str], tmp_path: Path) -> None:
    from ray.job_submission import JobSubmissionClient

    from tests.support.scripted_server import ScriptedServer
    from tests.support.tinygsm_teacher import tinygsm_reply

    client = JobSubmissionClient(
        ray_head["address"], headers={"Authorization": f"Bearer {ray_head['token']}"}
    )
    with ScriptedServer(reply=tinygsm_reply, latency=1.5, model="m") as srv:  # a run of several s
        job = client.submit_job(entrypoint=shlex.join([
            sys.executable, "-m", "orchestrator", "run", "tinygsm", "--seeds", "demo.jsonl",
            "--out", str(tmp_path / "out"), "--base-url", srv.base_url, "--model", "m",
            "--workers", "1", "--concurrency", "2", "--no-decontaminate", "--json",
        ]))  # fmt: skip
        done = watch(job, "--address", ray_head["address"], "--json", timeout=240,
                     RAY_AUTH_TOKEN=ray_head["token"])  # fmt: skip
        requests = srv.request_count
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    summary = events[-1]["summary"]
    assert summary["seeds_read"] == 8 and summary["requests"] == requests == 8
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[-1]["state"] == "finished"
    assert progress[-1]["counters"]["writer"]["rows"] == summary["rows_written"] > 0
    # with Ray's dashboard up, actor state comes from Ray's state API
    actors = [a for e in progress for a in e["actors"]]
    assert any(a["source"] == "ray" and a["state"] == "alive" for a in actors), actors
    assert all(n["node"] == "127.0.0.1" for e in progress for n in e["nodes"])


def test_watch_job_token_missing_or_wrong_is_a_clear_error(
    ray_head: dict[str, str], tmp_path: Path
) -> None:
    job = submit(ray_head, "--steps", "1", "--interval", "0")
    wrong = watch(job, "--address", ray_head["address"], RAY_AUTH_TOKEN="0" * 32, timeout=60)
    assert wrong.returncode == 2
    assert "rejected the Ray auth token" in wrong.stderr and "ray get-auth-token" in wrong.stderr
    missing = watch(job, "--address", ray_head["address"], HOME=str(tmp_path), timeout=60)
    assert missing.returncode == 2
    assert "none was found" in missing.stderr and "RAY_AUTH_TOKEN" in missing.stderr
    unknown = watch("no-such-job", "--address", ray_head["address"],
                    RAY_AUTH_TOKEN=ray_head["token"], timeout=60)  # fmt: skip
    assert unknown.returncode == 2 and "no job no-such-job" in unknown.stderr


@pytest.mark.timeout(240)
def test_hub_counters_reach_rays_prometheus_export(
    ray_head: dict[str, str], tmp_path: Path
) -> None:
    out = str(tmp_path / "out")
    submit(ray_head, "--steps", "4", "--interval", "0.2", "--hub", out, "--linger", "30")
    url = f"http://127.0.0.1:{ray_head['metrics']}/metrics"
    name = hub_name(out)
    deadline, text = time.monotonic() + 60, ""
    while time.monotonic() < deadline:
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            text = ""
        lines = [ln for ln in text.splitlines() if "mathsynth_events_total" in ln and name in ln]
        if any('event="dropped"' in ln and 'reason="timeout"' in ln for ln in lines):
            break
        time.sleep(1)
    else:
        pytest.fail(f"mathsynth_events_total for {name} never appeared at {url}")
    seen = next(ln for ln in lines if 'event="seen"' in ln and 'stage="execute"' in ln)
    assert float(seen.rsplit(" ", 1)[1]) == 16  # 4 pushes of seen=4
