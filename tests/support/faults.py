"""Fault injection and exact-once checks for the cluster tests (and ``cluster_job.py``).

What it does:

* ``run_cluster_job(spec, tmp)``: runs ``tests.support.cluster_job`` (a multi-node cluster)
  in a child process and returns its parsed ``RESULT`` line;
* ``synthetic_seeds(n)``: seeds with distinct questions (content-hash ids);
* ``job_config(base_url, ...)``: a TinyGSM one-step config against the scripted teacher;
* ``wait_for_shards`` / ``alive_workers`` / ``kill_worker``: wait until ``n`` commits (workers'
  candidate commits or final ones) are on disk, list the live ``GenerationWorker`` processes (pid, node) from Ray's actor table,
  and kill one with SIGKILL (a real process death: Ray restarts the actor);
* ``audit(out)``: reads every final commit's ledger straight from the parquet footers and
  manifests (independently of ``OutputStore``) and returns how often each seed, row id and
  normalised question occurs, and which rejected files have no commit;
* ``requests_per_seed(bodies)``: how many teacher requests each seed question caused, read from
  the request bodies the scripted server recorded (one-step prompts quote the seed).

What it does NOT do: start servers, or assert anything but that the child succeeded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from orchestrator.cli.app import build_config
from orchestrator.core.config import PipelineConfig
from orchestrator.core.records import Record, normalize_question
from orchestrator.output.store import LEDGER_KEY
from tests.support.tinygsm_teacher import extract_seed, last_user_message

ROOT = Path(__file__).resolve().parent.parent.parent


def synthetic_seeds(n: int) -> list[Record]:
    return [
        Record.seed(
            f"Mara packs {i + 3} crates with {i % 7 + 2} lemons each on day {i}. "
            "How many lemons does she pack?",
            str((i + 3) * (i % 7 + 2)),
            "fault-test",
        )
        for i in range(n)
    ]


def job_config(
    base_url: str, run: dict[str, Any], decontamination: dict[str, Any] | None = None
) -> PipelineConfig:
    cfg, builtin = build_config("tinygsm", {
        "teacher": {"base_url": base_url, "model": "scripted", "max_attempts": 4,
                    "backoff_initial_s": 0.05, "backoff_max_s": 0.2, "read_timeout_s": 20},
        "run": run,
        "tinygsm": {"method": "one-step", "problems_per_seed": 6},
        # the default benchmarks come from the hub: off unless local ones are given
        "decontamination": decontamination or {"enabled": False},
    })  # fmt: skip
    assert not builtin
    return cfg


def data_files(out: Path) -> list[Path]:
    return sorted((out / "data").glob("train-*.parquet"))


def commit_files(out: Path) -> list[Path]:
    """Commits on disk now: workers' candidate commits (until finalized) and final ones."""
    candidates = sorted((out / "_mathsynth" / "candidates").glob("cand-*"))
    return candidates + data_files(out) + sorted((out / "_mathsynth" / "commits").glob("*.json"))


def wait_for_shards(out: Path, n: int, timeout: float) -> bool:
    """Wait until ``n`` commits (candidate or final) are on disk."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(commit_files(out)) >= n:
            return True
        time.sleep(0.05)
    return False


def alive_workers() -> list[tuple[int, str]]:
    """(pid, node id) of every live GenerationWorker of the connected Ray cluster."""
    from ray._private.state import actors  # GCS actor table; needs no dashboard

    return [
        (info["Pid"], info["Address"]["NodeID"])
        for info in actors().values()
        if info["ActorClassName"] == "GenerationWorker" and info["State"] == "ALIVE"
    ]


def kill_worker(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


@dataclass
class Audit:
    seed_commits: Counter[str]  # seed id -> number of commits naming it
    row_ids: Counter[str]
    questions: Counter[str]  # normalised question -> rows
    commits: set[str]
    orphan_rejected: list[str]  # rejected files whose commit never landed

    def exactly_once(self, seed_ids: list[str]) -> bool:
        return set(self.seed_commits) == set(seed_ids) and set(self.seed_commits.values()) == {1}


def audit(out: Path) -> Audit:
    seeds: Counter[str] = Counter()
    row_ids: Counter[str] = Counter()
    questions: Counter[str] = Counter()
    commits: set[str] = set()
    used: set[str] = set()  # candidate commits the final ones used up
    for file in data_files(out):
        ledger = json.loads(pq.read_schema(file).metadata[LEDGER_KEY])
        seeds.update(list(ledger["seeds"]))
        used.update(ledger["candidates"])
        table = pq.read_table(file, columns=["id", "question"])
        row_ids.update(table.column("id").to_pylist())
        questions.update(normalize_question(q) for q in table.column("question").to_pylist())
        commits.add(file.stem.removeprefix("train-"))
    for file in sorted((out / "_mathsynth" / "commits").glob("*.json")):
        manifest = json.loads(file.read_text())
        seeds.update(list(manifest["seeds"]))
        used.update(manifest["candidates"])
        commits.add(file.stem)
    orphans = [
        f.name
        for f in sorted((out / "rejected").glob("rejected-*.parquet"))
        if f.stem.removeprefix("rejected-") not in commits | used
    ]
    return Audit(seeds, row_ids, questions, commits, orphans)


def requests_per_seed(bodies: list[dict[str, Any]], seeds: list[Record]) -> Counter[str]:
    """Seed id -> one-step teacher requests that quoted its question."""
    by_question = {s.question.strip(): s.id for s in seeds}
    counts: Counter[str] = Counter()
    for body in bodies:
        counts[by_question[extract_seed(last_user_message(body)).strip()]] += 1
    return counts


def run_cluster_job(spec: dict[str, Any], tmp_path: Path, timeout: float = 150) -> dict[str, Any]:
    """Run ``tests.support.cluster_job`` in a child process; its RESULT line, parsed."""
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.cluster_job", str(tmp_path / "spec.json")],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=timeout,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


def logged_seeds(out: Path) -> set[str]:
    """Seeds with a reply in the reply log (read straight from its JSON lines)."""
    seeds = set()
    for file in (out / "_mathsynth" / "replies").glob("replies-*.jsonl"):
        for line in file.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a line cut by the kill
                seeds.add(json.loads(line)["seed_id"])
    return seeds
