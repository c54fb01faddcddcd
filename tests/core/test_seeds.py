import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.core.seeds import SeedConfig, SeedError, extract_gold_answer, load_seeds


def test_gold_answer_extraction() -> None:
    assert extract_gold_answer("She has 3+4=7 apples.\n#### 1,234") == "1234"
    assert extract_gold_answer(r"So $x = \boxed{\frac{1}{2}}$.") == r"\frac{1}{2}"
    assert extract_gold_answer(None) is None


def test_jsonl_ids_are_content_hashes_and_duplicates_collapse(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    rows = [{"question": "What is 2 + 3?", "answer": "#### 5"}] * 2 + [{"problem": "1+1?"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    seeds = load_seeds(str(f), SeedConfig())
    assert len(seeds) == 2
    assert seeds[0].gold_answer == "5" and seeds[1].gold_answer is None
    again = load_seeds(str(f), SeedConfig())
    assert [s.id for s in seeds] == [s.id for s in again]
    # rows are published: they carry the file's name, never the local path
    assert {s.source for s in seeds} == {"s.jsonl"}


def test_bad_jsonl_line_is_named(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_text('{"question": "ok 1?"}\n{"question": broken\n')
    with pytest.raises(SeedError, match=rf"{f}:2: invalid JSON"):
        load_seeds(str(f), SeedConfig())


def test_missing_question_field_is_named(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_text('{"question": "ok 1?"}\n\n{"text": "no question"}\n')
    with pytest.raises(SeedError, match=rf"{f}:3: no question field"):
        load_seeds(str(f), SeedConfig())


def test_parquet_and_json_and_limit(tmp_path: Path) -> None:
    rows = [{"question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(5)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "s.parquet")
    (tmp_path / "s.json").write_text(json.dumps({"data": rows}))
    assert len(load_seeds(str(tmp_path / "s.parquet"), SeedConfig(), limit=3)) == 3
    assert [s.question for s in load_seeds(str(tmp_path / "s.json"), SeedConfig())][0] == (
        "What is 0 + 1?"
    )


def test_builtin_demo_seeds_and_gsm8k_file(gsm8k_train: Path) -> None:
    demo = load_seeds("demo.jsonl", SeedConfig())
    assert len(demo) >= 5 and all(s.gold_answer for s in demo)
    gsm = load_seeds(str(gsm8k_train), SeedConfig(), limit=50)
    assert len(gsm) == 50 and all(
        s.gold_answer and s.gold_answer.lstrip("-").isdigit() for s in gsm
    )


def test_unknown_seed_spec() -> None:
    with pytest.raises(SeedError, match="no such seed file"):
        load_seeds("nope.jsonl", SeedConfig())
