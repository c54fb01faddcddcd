"""What ``mathsynth run`` prints when its output is not a terminal (CI, ``ray job logs``, a
file), and with ``--json``: a real subprocess, real Ray, real HTTP to a scripted teacher."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply

ROOT = Path(__file__).resolve().parents[2]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 ")


def run(out: Path, base_url: str, seeds: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1",
           "COLUMNS": "80"}  # fmt: skip
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "tinygsm", "--seeds", str(seeds),
         "--limit", "12", "--out", str(out), "--base-url", base_url, "--model", "m",
         "--workers", "1", "--concurrency", "2", "--no-decontaminate", *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


@pytest.mark.timeout(300)
def test_plain_output_timestamped_unwrapped_uncoloured_with_startup_and_a_summary_table(
    tmp_path: Path, gsm8k_train: Path
) -> None:
    with ScriptedServer(reply=tinygsm_reply, latency=0.2) as srv:
        done = run(tmp_path / "out", srv.base_url, gsm8k_train)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stderr + done.stdout
    lines = done.stderr.splitlines()
    # one line per event, each with an ISO timestamp: no hard wrap, no Ray warning in between
    assert all(ISO.match(line) for line in lines), done.stderr
    progress = [i for i, line in enumerate(lines) if "[progress]" in line]
    assert progress and all(" ETA " in lines[i] for i in progress)  # whole, though > 80 cols
    assert max(len(lines[i]) for i in progress) > 80
    # start-up: what is starting, with elapsed time, before the first progress line
    start = [line for line in lines[: progress[0]] if "[start" in line]
    steps = [line.split("] ", 1)[1] for line in start]
    # Ray starts in the background once the seeds are counted (a bad row stops us before);
    # a fresh output's teacher check runs meanwhile
    assert steps[:3] == ["loading seeds", "starting Ray", "checking the teacher"], start
    assert steps.index("reading the output directory") < steps.index("starting the job's actors")
    assert "ready after" in start[-1]
    assert re.search(r"\[start \+\d+\.\ds\] starting the job's actors", "\n".join(start))
    assert "finished seeds 12/12" in lines[progress[-1]]
    # the summary: a table for people on stdout, grouped
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    table = done.stdout
    for group in ("seeds", "rows", "rejected", "teacher", "time"):
        assert re.search(rf"^\s*{group}\s", table, re.M), (group, table)
    assert re.search(rf"written by this run\s+{summary['rows_written']}\b", table), table
    assert re.search(r"read\s+12\b", table) and "question_filter:too_short" in table
    assert "{" not in table and "seeds_read" not in table  # not a dict dump


@pytest.mark.timeout(300)
def test_json_events_parse_with_a_schema_and_integer_counts(
    tmp_path: Path, gsm8k_train: Path
) -> None:
    with ScriptedServer(reply=tinygsm_reply, latency=0.2) as srv:
        done = run(tmp_path / "out", srv.base_url, gsm8k_train, "--json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]  # every line is an event
    assert {e["event"] for e in events} == {"startup", "progress", "summary"}
    assert all(e["schema"] == 1 for e in events)
    assert events[-1]["event"] == "summary" and events[-1]["summary"]["seeds_read"] == 12
    startup = [e for e in events if e["event"] == "startup"]
    assert startup[0]["step"] == "loading seeds" and events.index(startup[-1]) < min(
        i for i, e in enumerate(events) if e["event"] == "progress"
    )
    for event in (e for e in events if e["event"] == "progress"):
        for group, names in event["counters"].items():
            for name, value in names.items():
                measure = name.endswith(("_seconds", "_s"))
                assert isinstance(value, float if measure else int), (group, name, value)
        for name, value in event["gauges"].items():
            if isinstance(value, (int, float)) and not name.endswith(("_seconds", "_s")):
                assert isinstance(value, int), (name, value)
