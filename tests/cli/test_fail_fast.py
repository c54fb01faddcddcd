"""Failing fast and loud, as a user meets it: ``python -m orchestrator run ...`` in a real
subprocess with its own Ray, against the scripted teacher over real HTTP on 127.0.0.1 (or a
port nothing listens on). Exit codes: 0 every seed finished, 1 seeds left undone or a teacher
problem, 2 bad input or configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from orchestrator.core.resources import data_dir
from tests.support.cli import ROOT, run_cli
from tests.support.held_cpu import one_cpu_held
from tests.support.scripted_server import Fault, ScriptedServer
from tests.support.tinygsm_teacher import last_user_message, tinygsm_reply
from tests.teacher.test_preflight import HTML, closed_port


def pipeline(tmp_path: Path, **run: Any) -> str:
    """A TinyGSM pipeline file: one request per seed, small commits, no decontamination."""
    data = yaml.safe_load((data_dir("pipelines") / "tinygsm.yaml").read_text())
    data["run"].update({"workers": 1, "concurrency": 2, "commit_every_seeds": 2, **run})
    data["decontamination"]["enabled"] = False  # its benchmarks come from the hub
    data["teacher"].update({"max_attempts": 2, "backoff_initial_s": 0.05, "backoff_max_s": 0.1})
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def run_args(tmp_path: Path, seeds: Path, url: str, model: str, *extra: str) -> list[str]:
    return ["run", pipeline(tmp_path), "--seeds", str(seeds), "--out", str(tmp_path / "out"),
            "--base-url", url, "--model", model, "--no-progress", *extra]  # fmt: skip


def flat(text: str) -> str:
    return " ".join(text.split())


def no_data(out: Path) -> bool:
    return not list(out.glob("data/*.parquet")) and not list(out.glob("_mathsynth/commits/*"))


# ------------------------------------------------------------------ the teacher, checked first


def test_an_unreachable_teacher_stops_the_run_before_any_worker(
    tmp_path: Path, gsm8k_train: Path
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    started = time.monotonic()
    code, out = run_cli(*run_args(tmp_path, gsm8k_train, url, "m", "--limit", "300"))
    elapsed = time.monotonic() - started
    assert code == 1, out
    assert f"teacher {url} model 'm': cannot reach the teacher: connection refused" in flat(out)
    assert "Traceback" not in out and "timeout" not in out.lower()
    assert "seeds ->" in out and "workers x" in out  # it got as far as the run, then stopped
    assert no_data(tmp_path / "out")
    print(f"unreachable teacher: exit {code} after {elapsed:.1f} s (300 seeds)")


def test_a_model_the_server_does_not_know_is_named(tmp_path: Path, gsm8k_train: Path) -> None:
    with ScriptedServer(reply=tinygsm_reply, known_models=["Qwen/Qwen2.5-7B-Instruct"]) as srv:
        code, out = run_cli(*run_args(tmp_path, gsm8k_train, srv.base_url, "qwen", "--limit", "50"))
        assert srv.request_count == 1  # the one-token check, nothing else
    assert code == 1, out
    assert "does not know model 'qwen' (HTTP 404" in flat(out)
    assert "it serves: Qwen/Qwen2.5-7B-Instruct" in flat(out)


@pytest.mark.parametrize("where", ["models", "chat"])
def test_html_and_empty_bodies_are_named(tmp_path: Path, gsm8k_train: Path, where: str) -> None:
    page = Fault(kind="malformed", body=HTML, content_type="text/html")
    kwargs: dict[str, Any] = (
        {"models_fault": page}
        if where == "models"
        else {"reply": lambda body, index: Fault(kind="malformed", body="")}
    )
    with ScriptedServer(**kwargs) as srv:
        code, out = run_cli(*run_args(tmp_path, gsm8k_train, srv.base_url, "m", "--limit", "50"))
    assert code == 1, out
    named = "GET /models answered 200 with an HTML page" if where == "models" else "an empty body"
    assert named in flat(out)
    assert no_data(tmp_path / "out")


# ------------------------------------------------------------------ during the run


def run_60_seeds(
    tmp_path: Path, seeds: Path, answer: str | Fault, **run: Any
) -> tuple[int, str, int]:
    """``(exit code, output, requests the server got)`` of a run over 60 seeds against a server
    that lists the model (so the check sends no chat request) and answers every request with
    ``answer``; ``run``: the pipeline's run settings."""
    with ScriptedServer(reply=lambda body, index: answer, known_models=["s"]) as srv:
        args = run_args(tmp_path, seeds, srv.base_url, "s", "--limit", "60")
        args[1] = pipeline(tmp_path, **run)
        code, out = run_cli(*args)
        return code, out, srv.request_count


def test_a_400_on_every_request_stops_after_the_first_seeds(
    tmp_path: Path, gsm8k_train: Path
) -> None:
    """The server lists the model (so the check sends no chat request) but rejects every real
    request: the run stops after ``stop_after_failures`` seeds instead of sending all 60."""
    fault = Fault(status=400, message="max_tokens is too large for this model")
    code, out, sent = run_60_seeds(tmp_path, gsm8k_train, fault, stop_after_failures=4)
    assert code == 1, out
    text = flat(out)
    assert (
        "run stopped: the first" in text and "seeds all failed the same way (bad_request)" in text
    )
    assert "max_tokens is too large for this model" in text
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    # one worker with 2 chunks of 2 seeds out at a time (chunks do not grow before a seed
    # works): the stop comes after 4 failed seeds with at most 2 chunks still out
    assert summary["seeds_not_run"] > 0 and sent <= 8, sent
    assert summary["seeds_failed"] >= 4 and summary["seeds_accepted"] == 0
    print(f"400 on every request: stopped after {sent} of 60 requests")


def test_a_teacher_that_refuses_everything_stops_after_the_first_seeds(
    tmp_path: Path, gsm8k_train: Path
) -> None:
    """Every request succeeds, every reply is a refusal: no request fails, every seed is
    rejected. The run stops after ``stop_after_empty_seeds`` seeds instead of paying for all
    60, exits 1, and names why the items were dropped."""
    refusal = "I'm sorry, but I can't help with that request."
    code, out, sent = run_60_seeds(tmp_path, gsm8k_train, refusal, stop_after_empty_seeds=4)
    assert code == 1, out
    text = flat(out)
    assert "run stopped: the first" in text and "seeds gave no row (items dropped:" in text
    assert "one_step:parse:missing_marker=" in text
    assert "Traceback" not in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    # as above: one worker, chunks of 2 seeds, at most 2 chunks out when the stop comes
    assert summary["seeds_rejected"] >= 4 and summary["seeds_accepted"] == 0
    assert summary["seeds_not_run"] > 0 and sent <= 8, sent
    assert not list((tmp_path / "out").glob("data/*.parquet"))
    print(f"a refusing teacher: stopped after {sent} of 60 requests")


def test_a_run_with_failed_seeds_exits_1(tmp_path: Path, gsm8k_train: Path) -> None:
    """Some seeds fail for good (404), the others finish: every seed is accounted for, and the
    exit code says the run is not complete; the rerun retries only the failed ones."""

    def reply(body: dict[str, Any], index: int) -> str | Fault:
        prompt = last_user_message(body)
        if "failing" in prompt:
            return Fault(status=404, message="no such route for this prompt")
        return tinygsm_reply(body, index)

    seeds = tmp_path / "seeds.jsonl"
    rows = [json.loads(line) for line in gsm8k_train.read_text().splitlines()[:8]]
    for i in (2, 5):
        rows[i]["question"] += " (failing)"
    seeds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with ScriptedServer(reply=reply, model="s") as srv:
        code, out = run_cli(*run_args(tmp_path, seeds, srv.base_url, "s"))
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert code == 1, out
        assert summary["seeds_failed"] == 2 and summary["seeds_not_run"] == 0
        assert summary["seeds_accepted"] + summary["seeds_rejected"] == 6
        assert "2 of 8 seeds did not finish (2 failed: error:not_found=2)" in flat(out)
        first = srv.request_count
        code, out = run_cli(*run_args(tmp_path, seeds, srv.base_url, "s"))
        assert code == 1 and srv.request_count - first == 2  # only the failed seeds again


def test_more_workers_than_the_machine_has_cpus(tmp_path: Path, gsm8k_train: Path) -> None:
    """Each worker asks for every CPU of the machine: only one fits. The run says so and
    finishes instead of waiting forever on workers Ray cannot place."""
    cpus = os.cpu_count() or 1
    with ScriptedServer(reply=tinygsm_reply, model="s") as srv:
        args = run_args(tmp_path, gsm8k_train, srv.base_url, "s", "--limit", "6", "--workers", "3")
        args[1] = pipeline(tmp_path, worker_cpus=cpus, commit_every_seeds=1)
        code, out = run_cli(*args, timeout=240)
    assert code == 0, out
    assert "--workers 3 asked, but this Ray cluster has room for 1" in flat(out)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["seeds_accepted"] + summary["seeds_rejected"] == 6


def test_workers_no_node_can_hold_fail_with_what_exists(tmp_path: Path, gsm8k_train: Path) -> None:
    with ScriptedServer(reply=tinygsm_reply, model="s") as srv:
        args = run_args(tmp_path, gsm8k_train, srv.base_url, "s", "--limit", "4")
        args[1] = pipeline(tmp_path, worker_resources={"big_box": 1})
        code, out = run_cli(*args)
        assert srv.request_count == 0
    assert code == 2, out
    assert "a generation worker asks for CPU 1, big_box 1, and no node" in flat(out)
    assert "(cluster: CPU " in flat(out) and "Traceback" not in out


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"question": "What is 2 + 2 + 2 + 2 + 2?"}\n{"question": null}\n', ":2: 'question' is null"),
        (b'{"question": 12345}\n', ":1: 'question' must be text, not a number"),
        (b'{"question": ["a", "b"]}\n', ":1: 'question' must be text, not a list"),
        (b'{"question": {"text": "What is 1 + 1?"}}\n', ":1: 'question' must be text, not an object"),
        (b'{"question": "ok"}\n\xff\xfe\x00binary\x00\n', ":2: not UTF-8 text (byte 0xff at column 1)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", ":1: not UTF-8 text (byte 0x89 at column 1)"),
        (b"\x00\x01\x02\x03 tar\x00\n", ":1: invalid JSON"),
        (json.dumps({"question": "How many? " * 1_000_000}).encode() + b"\n",
         ":1: 'question' is 10,000,000 characters, over the limit of 32,000"),
    ],
    ids=["null", "number", "list", "object", "not-utf8", "png", "binary", "10MB"],
)  # fmt: skip
def test_bad_seed_files_are_one_line_errors(tmp_path: Path, content: bytes, expected: str) -> None:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_bytes(content)
    with ScriptedServer() as srv:
        code, out = run_cli(*run_args(tmp_path, seeds, srv.base_url, "m"))
        assert srv.request_count == 0  # nothing was sent to the teacher
    assert code == 2, out
    assert f"error: {seeds}{expected}" in out  # one line, naming file and line
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_an_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("not a directory")
    code, out = run_cli("run", "tinygsm", "--seeds", "demo.jsonl", "--out", str(target),
                        "--base-url", f"http://127.0.0.1:{closed_port()}/v1", "--model", "m")  # fmt: skip
    assert code == 2, out
    assert f"error: {target}: exists and is not a directory" in out and "Traceback" not in out
    assert target.read_text() == "not a directory"


@pytest.mark.usefixtures("ray_local")
def test_workers_beyond_the_free_cpus_of_a_joined_cluster(
    tmp_path: Path, gsm8k_train: Path
) -> None:
    """The run joins a Ray cluster (``RAY_ADDRESS``) where another actor holds one of its two
    CPUs: two workers would leave one pending forever (and its chunks with it); one starts,
    the note says why, and the run finishes."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_ADDRESS": ray.get_runtime_context().gcs_address}  # fmt: skip
    with one_cpu_held(), ScriptedServer(reply=tinygsm_reply, model="s") as srv:
        args = run_args(tmp_path, gsm8k_train, srv.base_url, "s", "--limit", "6",
                        "--workers", "2")  # fmt: skip
        args[1] = pipeline(tmp_path, commit_every_seeds=1)
        done = subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=240)  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "--workers 2 asked; the Ray cluster has room for 2, but other jobs" in flat(out)
    assert "starting 1" in flat(out)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["seeds_accepted"] + summary["seeds_rejected"] == 6
