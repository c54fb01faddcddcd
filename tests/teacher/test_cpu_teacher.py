"""The built-in offline teacher, end to end: a real 135M model behind llama.cpp's
OpenAI-compatible server. Assertions are about accounting, never about the model's wording."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from orchestrator.teacher import local_cpu
from tests.support.cli import run_cli

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not local_cpu.available(), reason="built-in CPU teacher not installed "
                    "(pip install 'mathsynth[cpu-teacher]')")  # fmt: skip
def test_builtin_teacher_runs_the_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = run_cli("run", "tinygsm", "--seeds", "demo.jsonl", "--limit", "2",
                           "--out", str(out), "--no-progress", "--no-decontaminate", timeout=600)  # fmt: skip
    assert code == 0, output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] == 2 and summary["completion_tokens"] > 0
    assert summary["seeds_accepted"] + summary["seeds_rejected"] == 2
    rows = sum(pq.read_metadata(f).num_rows for f in (out / "data").glob("*.parquet"))
    assert rows == summary["rows_total"] == summary["rows_written"]
