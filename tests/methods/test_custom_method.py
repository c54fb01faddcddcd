"""A method defined outside the package (``tests/support/plugin`` copied into a temporary
folder) run end to end on a real local Ray against the scripted teacher: through the command
line (``kind: module:attr``, the module on PYTHONPATH), through the Python API from a script
(an installed entry point), and refused with a clear message when Ray workers cannot import it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

from tests.support.cli import environment, run_cli
from tests.support.doubler import (
    KEPT,
    REJECTED,
    doubler_reply,
    install,
    install_entry_point,
    pipeline,
    write_seeds,
)
from tests.support.output import check_dataset, rows
from tests.support.scripted_server import ScriptedServer


def check_output(out: Path, tmp_path: Path, factor: int) -> None:
    written = rows(out)
    assert sorted(int(r["question"].split("Sam has ")[1].split()[0]) for r in written) == sorted(
        KEPT
    )
    for row in written:
        a, b = (int(n) for n in row["question"].split("Sam has ")[1].split()[:5:4])
        assert row["method"] == "doubler" and row["answer"] == str(factor * (a + b))
        assert row["answer"] == row["gold_answer"]  # verified against the seed's gold
        assert row["meta"]["factor"] == factor and isinstance(row["meta"]["reply_words"], int)
        assert row["template"] == "ask" and row["sampling"]["max_tokens"] == 200
        assert row["code"] in row["solution"] and row["solution"].endswith(
            f"The answer is $\\boxed{{{row['answer']}}}$."
        )
    reasons: dict[str, int] = {}
    for r in rows(out, "rejected"):
        reasons[r["reject_reason"]] = reasons.get(r["reject_reason"], 0) + 1
    assert reasons == REJECTED
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds_failed"] == 0 and summary["rows_written"] == len(KEPT)
    assert summary["rejected_by_reason"]["ask_program:no_program"] == 1
    assert check_dataset(out, tmp_path / "hf-check")["data"] > 1


def test_custom_method_through_the_command_line(tmp_path: Path) -> None:
    plugins = install(tmp_path / "plugins")
    seeds = write_seeds(tmp_path / "seeds.jsonl")
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(pipeline("doubler_method:METHOD", seeds, factor=3)))
    out = tmp_path / "out"
    with ScriptedServer(reply=doubler_reply, known_models=["s"]) as srv:
        code, output = run_cli(
            "run", str(p), "--out", str(out), "--base-url", srv.base_url, "--model", "s",
            "--no-progress", pythonpath=[plugins],
        )  # fmt: skip
        assert code == 0, output
        assert srv.request_count == 6  # one per seed
    check_output(out, tmp_path, factor=3)
    # the same command resumes: nothing left to ask
    with ScriptedServer(reply=doubler_reply, known_models=["s"]) as srv:
        code, output = run_cli(
            "run", str(p), "--out", str(out), "--base-url", srv.base_url, "--model", "s",
            "--no-progress", pythonpath=[plugins],
        )  # fmt: skip
        assert code == 0 and srv.request_count == 0, output


def run_script(
    script: str, tmp_path: Path, pythonpath: list[Path]
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "run_it.py"
    path.write_text(textwrap.dedent(script))
    return subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path / "elsewhere", env=environment(pythonpath),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_custom_method_from_a_script_with_the_api(tmp_path: Path) -> None:
    """``api.run`` starts Ray itself; the method is an installed entry point (a dist-info on
    PYTHONPATH, as ``pip install`` leaves it) that driver and workers discover."""
    site = install_entry_point(tmp_path / "site")
    seeds = write_seeds(tmp_path / "seeds.jsonl")
    (tmp_path / "elsewhere").mkdir()
    out = tmp_path / "out"
    config: dict[str, Any] = pipeline("doubler", seeds, factor=5)
    with ScriptedServer(reply=doubler_reply, known_models=["scripted"]) as srv:
        done = run_script(
            f"""
            import json
            from orchestrator import api

            summary = api.run({config!r}, out={str(out)!r}, base_url={srv.base_url!r},
                              model="scripted")
            print("SUMMARY", json.dumps(summary))
            """,
            tmp_path, [site],
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.split("SUMMARY ", 1)[1])
    assert summary["rows_written"] == len(KEPT)
    check_output(out, tmp_path, factor=5)


def test_workers_that_cannot_import_the_method_are_caught_before_the_run(tmp_path: Path) -> None:
    """The script imports the method from a folder it put on its own ``sys.path``; Ray workers
    do not see that folder, so the run stops before any worker starts, saying why."""
    hidden = install(tmp_path / "hidden")
    seeds = write_seeds(tmp_path / "seeds.jsonl")
    (tmp_path / "elsewhere").mkdir()
    out = tmp_path / "out"
    config = pipeline("doubler_method:METHOD", seeds)
    done = run_script(
        f"""
        import sys
        sys.path.insert(0, {str(hidden)!r})
        from orchestrator import api
        from orchestrator.methods.catalog import MethodError

        try:
            api.run({config!r}, out={str(out)!r}, base_url="http://127.0.0.1:9/v1", model="m")
        except MethodError as err:
            print("REFUSED", err)
        """,
        tmp_path, [],
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "REFUSED Ray workers cannot load kind 'doubler_method:METHOD'" in done.stdout
    assert "cannot import module 'doubler_method'" in done.stdout
    assert not out.exists()  # nothing half-written
