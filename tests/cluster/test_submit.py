"""Cluster jobs against a real Ray head with its dashboard and token auth: `mathsynth submit`,
the documented `ray job submit`, stop + resume, wrong/missing token, and the API key kept out
of logs, dataset and card.

The head is `ray start --head --block` run by this module as a child process in its own
session (own --temp-dir, own token in RAY_AUTH_TOKEN, 127.0.0.1 only), ended by killing that
process group — never `ray stop`. The teacher is the scripted TinyGSM server in this process,
behind a gate that answers 401 unless the request carries the submitter's API key.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import requests
import yaml

from orchestrator.cluster.jobs_api import dashboard_address
from orchestrator.cluster.sealed_env import PREFIX, unseal_environ
from orchestrator.cluster.submit import (
    SubmitOptions,
    build_runtime_env,
    next_submission_id,
    wait_until_ended,
)
from orchestrator.core.resources import data_dir
from orchestrator.core.seeds import SeedConfig, load_seeds
from orchestrator.output.store import OutputStore
from tests.support.key_gate import KeyGate
from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import last_user_message, tinygsm_reply

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
API_KEY = "sk-test-" + secrets.token_hex(12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Head:
    def __init__(self, proc: subprocess.Popen[bytes], address: str, token: str, temp: Path):
        self.proc, self.address, self.token, self.temp = proc, address, token, temp

    def env(self, **extra: str) -> dict[str, str]:
        """A client's environment: the cluster token, no RAY_ADDRESS, the venv first on PATH."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "OPENAI"))}
        env.update(PATH=f"{VENV_BIN}:{env.get('PATH', '')}", RAY_AUTH_MODE="token",
                   RAY_AUTH_TOKEN=self.token, PYTHONUNBUFFERED="1")  # fmt: skip
        env.update(extra)
        return env

    def client(self) -> Any:
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.address, headers={"Authorization": f"Bearer {self.token}"})


@contextlib.contextmanager
def started_head() -> Iterator[Head]:
    """A `ray start --head --block` child with its own token and temp dir, just launched (not
    waited for), ended through its own process group on exit."""
    token = secrets.token_hex(16)
    temp = Path(tempfile.mkdtemp(prefix="msray", dir="/tmp"))  # short: unix socket paths
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "OPENAI"))}
    env.update(PATH=f"{VENV_BIN}:{env.get('PATH', '')}", RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN=token, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")  # fmt: skip
    with open(temp / "head.log", "wb") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "ray"), "start", "--head", "--block", f"--port={_free_port()}",
             "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
             f"--dashboard-port={port}", "--include-dashboard=true", "--num-cpus=2",
             f"--dashboard-agent-listen-port={_free_port()}",  # 52365 may be taken
             f"--temp-dir={temp}", "--disable-usage-stats"],
            env=env, cwd=temp, start_new_session=True,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield Head(proc, f"http://127.0.0.1:{port}", token, temp)
    finally:  # SIGTERM drains the node (up to 30 s), then anything left of the group dies
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=40)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    with started_head() as h:
        deadline = time.monotonic() + 120
        while True:
            assert h.proc.poll() is None, (h.temp / "head.log").read_text()[-3000:]
            try:  # the dashboard answers before its job agent does: submit until accepted
                warmup = h.client().submit_job(entrypoint="true")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        status = wait_until_ended(h.client(), warmup, deadline - time.monotonic())
        assert status in ("SUCCEEDED", "FAILED")
        yield h


def job_files(tmp_path: Path, gsm8k_train: Path, n_seeds: int) -> Path:
    """A working dir with a small TinyGSM pipeline (one request per seed) and its seeds."""
    wd = tmp_path / "wd"
    wd.mkdir()
    pipeline = yaml.safe_load((data_dir("pipelines") / "tinygsm.yaml").read_text())
    pipeline["run"].update({"workers": 1, "concurrency": 2, "commit_every_seeds": 2})
    pipeline["decontamination"]["enabled"] = False  # its benchmarks come from the hub
    (wd / "p.yaml").write_text(yaml.safe_dump(pipeline))
    lines = gsm8k_train.read_text().splitlines()[:n_seeds]
    (wd / "seeds.jsonl").write_text("\n".join(lines) + "\n")
    return wd


def run_args(out: Path, base_url: str) -> list[str]:
    return ["p.yaml", "--seeds", "seeds.jsonl", "--out", str(out), "--base-url", base_url,
            "--model", "s"]  # fmt: skip


def submit(head: Head, wd: Path, args: list[str], *extra: str, timeout: float = 240,
           **env: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "submit", "--address", head.address,
         "--working-dir", str(wd), *extra, "--", *args],
        cwd=ROOT, env=head.env(**env), text=True, capture_output=True, timeout=timeout,
    )  # fmt: skip


def assert_every_seed_once(out: Path, n_seeds: int) -> None:
    store = OutputStore(out)
    assert len(store.read_ledger().finished) == n_seeds
    ids = [r for f in store.committed_files()
           for r in pq.read_table(f, columns=["id"]).column("id").to_pylist()]  # fmt: skip
    assert ids and len(ids) == len(set(ids))


def files_containing(root: Path, needle: str) -> list[Path]:
    data = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
            and data in p.read_bytes()]  # fmt: skip


# --- without a cluster -----------------------------------------------------------------------


def test_runtime_env_carries_secrets_sealed_only() -> None:
    opts = SubmitOptions(["tinygsm", "--api-key-env", "MY_KEY"], env_vars=["HF_TOKEN"])
    env = build_runtime_env(opts, "cluster-token", {"MY_KEY": "k-1", "HF_TOKEN": "hf-2"})
    assert env["working_dir"] == "." and "pip" not in env
    text = repr(env)
    assert "k-1" not in text and "hf-2" not in text
    assert set(env["env_vars"]) == {PREFIX + "MY_KEY", PREFIX + "HF_TOKEN",
                                    "RAY_JOB_STOP_WAIT_TIME_S"}  # fmt: skip
    driver_env = dict(env["env_vars"])
    assert unseal_environ(driver_env, token="cluster-token") == ["HF_TOKEN", "MY_KEY"]
    assert driver_env["MY_KEY"] == "k-1" and driver_env["HF_TOKEN"] == "hf-2"


def test_submission_ids_are_stable_and_never_reused() -> None:
    first = next_submission_id("mathsynth run a", set())
    assert re.fullmatch(r"mathsynth-[0-9a-f]{10}-1", first)
    assert next_submission_id("mathsynth run a", set()) == first
    assert next_submission_id("mathsynth run a", {first}).endswith("-2")
    assert next_submission_id("mathsynth run b", set()) != first
    assert dashboard_address(None, {"RAY_ADDRESS": "http://h:8265/"}) == "http://h:8265"
    assert dashboard_address(None, {"RAY_ADDRESS": "h:6379"}) == "http://127.0.0.1:8265"
    assert dashboard_address("h:8265", {}) == "http://h:8265"


# --- a real head -----------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_submit_runs_the_job_and_keeps_the_key_secret(
    head: Head, tmp_path: Path, gsm8k_train: Path
) -> None:
    n_seeds = 8
    wd, out = job_files(tmp_path, gsm8k_train, n_seeds), tmp_path / "out"
    with (
        ScriptedServer(reply=tinygsm_reply, model="s") as srv,
        KeyGate(srv.base_url, API_KEY) as url,
    ):
        done = submit(head, wd, run_args(out, url), OPENAI_API_KEY=API_KEY)
        assert done.returncode == 0, done.stdout + done.stderr
        assert srv.request_count == n_seeds  # the key reached the workers: none refused
    job_id = done.stdout.split()[0]
    assert re.fullmatch(r"mathsynth-[0-9a-f]{10}-1", job_id)
    client = head.client()
    assert str(client.get_job_status(job_id).value) == "SUCCEEDED"
    assert_every_seed_once(out, n_seeds)
    # the key is nowhere: job logs, job info, every file of the head's session, the dataset
    assert API_KEY not in client.get_job_logs(job_id)
    assert API_KEY not in repr(client.get_job_info(job_id))
    assert files_containing(head.temp, API_KEY) == []
    assert files_containing(out, API_KEY) == []
    assert (out / "README.md").is_file()
    assert API_KEY not in done.stdout + done.stderr


@pytest.mark.timeout(300)
def test_documented_ray_job_submit_works(head: Head, tmp_path: Path, gsm8k_train: Path) -> None:
    n_seeds = 6
    wd, out = job_files(tmp_path, gsm8k_train, n_seeds), tmp_path / "out"
    with ScriptedServer(reply=tinygsm_reply, model="s") as srv:
        done = subprocess.run(
            [str(VENV_BIN / "ray"), "job", "submit", "--address", head.address,
             "--working-dir", str(wd), "--", "mathsynth", "run",
             *run_args(out, srv.base_url), "--no-progress"],
            env=head.env(), text=True, capture_output=True, timeout=240,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert srv.request_count == n_seeds
    assert "succeeded" in done.stdout
    assert_every_seed_once(out, n_seeds)


@pytest.mark.timeout(400)
def test_stopped_job_leaves_output_consistent_and_resubmit_resumes(
    head: Head, tmp_path: Path, gsm8k_train: Path
) -> None:
    n_seeds = 40
    wd, out = job_files(tmp_path, gsm8k_train, n_seeds), tmp_path / "out"
    seeds = {s.id: s.question for s in load_seeds(str(wd / "seeds.jsonl"), SeedConfig())}
    client = head.client()
    with ScriptedServer(reply=tinygsm_reply, latency=0.5, model="s") as srv:
        args = run_args(out, srv.base_url)
        started = submit(head, wd, args, "--no-watch")
        assert started.returncode == 0, started.stdout + started.stderr
        job_id = started.stdout.split()[0]
        deadline = time.monotonic() + 150
        # stopped once some seeds are committed (as candidates: the dataset's own commits
        # come every final_commit_s) and while most are still to do
        while len(OutputStore(out).read_ledger(with_questions=False).finished) < 4:
            assert time.monotonic() < deadline, client.get_job_logs(job_id)
            assert str(client.get_job_status(job_id).value) in ("PENDING", "RUNNING")
            time.sleep(0.2)
        client.stop_job(job_id)  # what `ray job stop` does: SIGTERM to the driver
        deadline = time.monotonic() + 90
        while str(client.get_job_status(job_id).value) != "STOPPED":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        # consistent: committed files read whole, the ledger names real seeds, and the run
        # stopped through its own SIGTERM handling (it wrote an interrupted summary)
        store = OutputStore(out)
        for f in store.committed_files():
            pq.read_table(f)
        finished = store.read_ledger().finished
        assert 0 < len(finished) < n_seeds
        assert (out / "summary.json").is_file(), client.get_job_logs(job_id)[-4000:]
        assert json.loads((out / "summary.json").read_text())["interrupted"] is True
        n_first = srv.request_count
        # resubmitting the same command resumes: only unfinished seeds are asked again
        again = submit(head, wd, args)
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.split()[0] == job_id[:-1] + "2"
        second = [last_user_message(r) for r in srv.requests][n_first:]
    # zero repeated requests for finished seeds; every other seed asked at most once: once,
    # or not at all when the stopped run had its reply already (the reply log, one request
    # per seed here)
    summary = json.loads((out / "summary.json").read_text())
    cached = summary["runs"][-1]["cache_hits"]
    asked_again = [sid for sid, q in seeds.items() for p in second if q in p]
    assert len(asked_again) == len(set(asked_again)) == len(second)
    assert set(asked_again) <= set(seeds) - finished
    assert len(set(seeds) - finished - set(asked_again)) == cached
    assert len(second) + cached == n_seeds - len(finished)
    assert_every_seed_once(out, n_seeds)
    assert not list(OutputStore(out).tmp.glob("*"))  # the resumed run cleaned any leftovers
    assert summary["seeds_skipped_already_finished"] == len(finished)


@pytest.mark.timeout(120)
def test_wrong_or_missing_token_is_a_clear_error(head: Head, tmp_path: Path) -> None:
    before = len(head.client().list_jobs())
    wrong = submit(head, tmp_path, ["tinygsm"], RAY_AUTH_TOKEN="0" * 32, timeout=60)
    assert wrong.returncode == 2
    message = " ".join(wrong.stderr.split())
    assert "rejected the Ray auth token" in message and "ray get-auth-token" in message
    home = tmp_path / "home"
    home.mkdir()
    env = head.env(HOME=str(home))
    env.pop("RAY_AUTH_TOKEN")
    missing = subprocess.run(
        [sys.executable, "-m", "orchestrator", "submit", "--address", head.address, "--",
         "tinygsm"], cwd=ROOT, env=env, text=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2
    message = " ".join(missing.stderr.split())
    assert "requires a Ray auth token and none was found" in message
    assert "RAY_AUTH_TOKEN" in message
    assert len(head.client().list_jobs()) == before  # nothing was submitted
    assert requests.get(f"{head.address}/api/version", timeout=10).status_code == 401


@pytest.mark.timeout(300)
def test_submit_right_after_the_head_starts_waits_for_it(tmp_path: Path) -> None:
    """`ray up` returns before the dashboard listens and the dashboard answers before its job
    agent can take jobs (HTTP 500): submit waits for both, and submits exactly once."""
    (tmp_path / "job.py").write_text("print('hello from the job')\n")
    with started_head() as h:
        with pytest.raises(requests.ConnectionError):  # nothing listens yet
            requests.get(f"{h.address}/api/version", timeout=5)
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", "submit", "--address", h.address,
             "--working-dir", str(tmp_path), "--wait", "120", "--submission-id", "early-1",
             "--no-watch", "--", "--help"],
            cwd=ROOT, env=h.env(), text=True, capture_output=True, timeout=240,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.split()[0] == "early-1"
        client = h.client()
        assert [j.submission_id for j in client.list_jobs()] == ["early-1"]
        assert wait_until_ended(client, "early-1", 120) == "SUCCEEDED"
        assert "Usage:" in client.get_job_logs("early-1")  # `mathsynth run --help` ran
