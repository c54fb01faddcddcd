"""README's "Write your own pipeline" works as written: its files are extracted into a fresh
folder and its command and script run there, with one change: the teacher is the scripted one
on loopback (``--base-url``/``--model`` added; the script takes them as arguments, as the README
shows), not the built-in CPU model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.cli import ROOT, environment, run_cli
from tests.support.output import check_dataset, rows
from tests.support.scripted_server import ScriptedServer

BLOCK = re.compile(r"<!-- readme-test: (\S+) -->\n```\w*\n(.*?)```\n", re.DOTALL)
DEMO = [json.loads(line) for line in (ROOT / "seeds" / "demo.jsonl").read_text().splitlines()]
WRONG = DEMO[1]["question"]  # the teacher's program for this one prints a wrong number


def blocks() -> dict[str, str]:
    section = (ROOT / "README.md").read_text().split("## Write your own pipeline", 1)[1]
    return {path: text for path, text in BLOCK.findall(section)}


def pot_reply(request: dict[str, Any], index: int) -> str:
    question = request["messages"][-1]["content"].split("Problem: ", 1)[1].strip()
    seed = next(s for s in DEMO if s["question"] == question)
    value = "999" if question == WRONG else seed["answer"]
    return f"```python\nanswer = {value}\nprint(answer)\n```"


def check(out: Path, tmp_path: Path) -> None:
    written = rows(out)
    assert len(written) == len(DEMO) - 1
    for row in written:
        assert row["method"] == "pot" and row["answer"] == row["gold_answer"]
        assert (
            row["solution"].startswith("```python\nanswer = ") and row["meta"]["program_lines"] == 2
        )
    assert [r["reject_reason"] for r in rows(out, "rejected")] == ["verify:wrong_answer"]
    check_dataset(out, tmp_path / f"hf-{out.name}")


def test_write_your_own_pipeline_section(tmp_path: Path) -> None:
    files = blocks()
    assert set(files) == {"pot/pot_method.py", "pot/prompts/write_program.j2",
                          "pot/pipeline.yaml", "pot/run_pot.py", "run"}  # fmt: skip
    for path, text in files.items():
        if path != "run":
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text(text)
    command = files["run"].split("#", 1)[0].split()
    assert command[:2] == ["mathsynth", "run"]
    with ScriptedServer(reply=pot_reply, known_models=["s"]) as srv:
        code, out = run_cli(*command[1:], "--base-url", srv.base_url, "--model", "s",
                            cwd=tmp_path, timeout=300)  # fmt: skip
        assert code == 0, out
        check(tmp_path / "pot-out", tmp_path)
        script = subprocess.run(
            [sys.executable, "pot/run_pot.py", srv.base_url, "s"], cwd=tmp_path,
            env=environment(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert script.returncode == 0, script.stdout + script.stderr
        assert f"{len(DEMO) - 1} rows written" in script.stdout
        check(tmp_path / "pot-api-out", tmp_path)
