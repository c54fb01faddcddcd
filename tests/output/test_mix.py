"""``mathsynth mix``: a generated arithmetic set blended into instruction data at a ratio, with
provenance, as parquet that ``datasets`` loads; through the real command line too."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datasets
import pytest

from orchestrator.core.records import Record
from orchestrator.engine.context import StepContext
from orchestrator.methods.arithmetic.config import ArithmeticConfig
from orchestrator.methods.arithmetic.pipeline import GenerateShard
from orchestrator.output.mix import MixError, mix, to_messages
from orchestrator.output.store import Commit, FinalCommit, OutputStore
from orchestrator.telemetry.counters import Counters

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def arith_dir(tmp_path: Path) -> Path:
    """A mathsynth output directory written by the arithmetic step and the real store."""
    ctx = StepContext(teacher=None, request_slots=asyncio.Semaphore(1),
                      executor=None, counters=Counters())  # type: ignore[arg-type]  # fmt: skip
    shard = Record(id="shard0", question="arithmetic shard 0", meta={"shard": 0, "count": 300})
    records = asyncio.run(GenerateShard(ArithmeticConfig()).arun([shard], ctx))
    store = OutputStore(tmp_path / "arith")
    store.prepare()
    cid, rows = store.write_candidates(Commit(seeds={"shard0": "accepted"}, rows=records))
    store.write_final(FinalCommit(seeds={"shard0": "accepted"}, rows=rows, candidates=[cid]))
    return store.root


@pytest.fixture
def alpaca(tmp_path: Path) -> Path:
    path = tmp_path / "alpaca.jsonl"
    rows = [{"instruction": f"Write a haiku about the number {i}.", "input": "" if i % 2 else "x",
             "output": f"Haiku {i}"} for i in range(900)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mix_at_a_ratio_with_provenance(tmp_path: Path, arith_dir: Path, alpaca: Path) -> None:
    out = tmp_path / "mix"
    summary = mix(arith_dir, alpaca, 0.1, out, seed=3)
    assert summary["base_rows"] == 900 and summary["blend_rows"] == 100 and summary["rows"] == 1000
    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert ds.num_rows == 1000 and ds.column_names == ["messages", "source", "source_id"]
    sources = Counter(ds["source"])
    assert sources == {"alpaca": 900, "arith": 100}
    arith_ids = {
        r["id"]
        for r in datasets.load_dataset(
            str(arith_dir), split="train", cache_dir=str(tmp_path / "hf-cache")
        )
    }
    for row in ds:
        user, assistant = row["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        if row["source"] == "arith":
            assert row["source_id"] in arith_ids and "=" in assistant["content"]
        else:
            i = int(row["source_id"])
            assert user["content"].startswith(f"Write a haiku about the number {i}.")
            assert user["content"].endswith("\n\nx") == (i % 2 == 0)
            assert assistant["content"] == f"Haiku {i}"
    assert len(set(ds["source_id"])) == 1000
    # shuffled, and reproducible from the seed
    assert ds["source"][:50] != sorted(ds["source"][:50])
    again = mix(arith_dir, alpaca, 0.1, tmp_path / "again", seed=3)
    assert again == {**summary}
    assert (
        datasets.load_dataset(
            str(tmp_path / "again"), split="train", cache_dir=str(tmp_path / "hf-cache")
        )["source_id"]
        == ds["source_id"]
    )


def test_mix_reports_a_shortfall_and_rejects_bad_input(
    tmp_path: Path, arith_dir: Path, alpaca: Path
) -> None:
    summary = mix(arith_dir, alpaca, 0.5, tmp_path / "m")  # wants 900, has 300
    assert summary["blend_rows"] == 300 and summary["ratio_achieved"] == 0.25
    with pytest.raises(MixError, match="ratio"):
        mix(arith_dir, alpaca, 1.0, tmp_path / "m2")
    with pytest.raises(MixError, match="not empty"):
        mix(arith_dir, alpaca, 0.1, tmp_path / "m")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no conversation here"}\n')
    with pytest.raises(MixError, match="row 0 has no conversation columns"):
        mix(arith_dir, bad, 0.1, tmp_path / "m3")


def test_conversation_formats() -> None:
    sharegpt = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
    assert to_messages(sharegpt) == [{"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "yo"}]  # fmt: skip
    assert to_messages({"problem": "1+1?", "solution": "2"})[1]["content"] == "2"  # type: ignore[index]
    assert to_messages({"prompt": "p", "completion": "c"})[0]["content"] == "p"  # type: ignore[index]
    assert to_messages({"conversations": [{"from": "alien", "value": "?"}]}) is None
    assert to_messages({"text": "t"}) is None


def test_mix_command_line(tmp_path: Path, arith_dir: Path, alpaca: Path) -> None:
    out = tmp_path / "cli-mix"
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "mix", str(arith_dir), str(alpaca), "--ratio",
         "0.25", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "mix.json").read_text())["blend_rows"] == 300
    failed = subprocess.run(
        [sys.executable, "-m", "orchestrator", "mix", str(arith_dir), str(alpaca), "--ratio",
         "0.25", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert failed.returncode == 2 and "is not empty" in " ".join(failed.stderr.split())
