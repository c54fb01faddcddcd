"""``mathsynth init NAME``: the scaffold runs end to end from the command line as written (here
against the scripted teacher; by hand against the built-in CPU teacher, see the report), and it
never overwrites a folder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.support.cli import run_cli
from tests.support.output import check_dataset, rows
from tests.support.scripted_server import ScriptedServer


def scaffold_reply(request: dict[str, Any], index: int) -> str:
    prompt = request["messages"][-1]["content"]
    if prompt.startswith("Solve this math word problem"):
        numbers = [int(n) for n in re.findall(r"\d+", prompt.split("Problem:", 1)[1])]
        return f"Add them: {' + '.join(map(str, numbers))}.\nThe answer is {sum(numbers)}."
    return f"Problem: Mia has {index + 2} red pens and {index + 5} blue pens. How many pens?"


def test_init_then_run(tmp_path: Path) -> None:
    code, out = run_cli("init", "word-problems", cwd=tmp_path, timeout=60)
    assert code == 0, out
    folder = tmp_path / "word-problems"
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        "pipeline.yaml", "prompts/question.j2", "prompts/solve.j2", "seeds.jsonl",
        "word_problems_method.py",
    ]  # fmt: skip
    # small final commits, so the dataset gets several shards (one schema across them)
    pipeline = folder / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("run:\n", "run:\n  final_commit_rows: 3\n"))
    # from another directory, with the paths as `init` printed them
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with ScriptedServer(reply=scaffold_reply, known_models=["s"]) as srv:
        code, out = run_cli(
            "run", "../word-problems/pipeline.yaml", "--out", "out", "--base-url", srv.base_url,
            "--model", "s", "--no-progress", cwd=elsewhere, timeout=300,
        )  # fmt: skip
        assert code == 0, out
    summary = json.loads((elsewhere / "out" / "summary.json").read_text())
    assert summary["seeds_read"] == 4 and summary["seeds_failed"] == 0
    written = rows(elsewhere / "out")
    assert len(written) == summary["rows_written"] == 8  # 2 problems per seed, all solved
    for row in written:
        assert row["method"] == "word_problems" and row["template"] == "question"
        assert row["meta"]["solve_template"] == "prompts/solve.j2"
        assert row["answer"] == str(sum(int(n) for n in re.findall(r"\d+", row["question"])))
    assert check_dataset(elsewhere / "out", tmp_path / "hf-check")["data"] > 1
    # a dry run renders the method's own prompt
    code, out = run_cli("run", "../word-problems/pipeline.yaml", "--dry-run", "--model", "m",
                        "--base-url", "http://127.0.0.1:9/v1", cwd=elsewhere, timeout=120)  # fmt: skip
    assert code == 0 and "Write one new math word problem" in out, out


def test_init_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    code, out = run_cli("init", "taken", cwd=tmp_path, timeout=60)
    assert code == 2 and "already exists" in out
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]
