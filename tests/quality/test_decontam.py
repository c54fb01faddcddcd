"""Decontamination against GSM8K test + MATH test with paraphrase-preserving leaks.

Probes are built here, deterministically, from the test sets: person/place names changed
(capitalised words that never occur lower-case in GSM8K or MATH), numbers changed, a sentence
appended. Every probe must be caught (100% recall asserted, short MATH items included: those
use the whole-item rule of ``orchestrator.quality.ngram_index``). Clean GSM8K-train questions must
rarely be flagged: measured 5 of the first 2,000 (0.25%), each sharing a 13-gram with a GSM8K
test question built on the same template.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.core.records import Record
from orchestrator.core.stage import run_chain
from orchestrator.quality.decontam import (
    BenchmarkSource,
    Decontaminate,
    DecontamSettings,
    build_index,
)
from orchestrator.quality.ngram_index import Rule, streams

NAMES = ["Xavier", "Yolanda", "Zebulon", "Quincy", "Ophelia", "Bartholomew", "Wilhelmina"]
APPENDIX = " Explain each step of your reasoning before giving the final answer."


def read(path: Path, field: str) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line)[field] for line in fh]


@pytest.fixture(scope="module")
def data(shared_data: Path) -> dict[str, list[str]]:
    paths = {
        "gsm8k": (shared_data / "gsm8k" / "test.jsonl", "question"),
        "math": (shared_data / "math" / "test.jsonl", "problem"),
        "train": (shared_data / "gsm8k" / "train.jsonl", "question"),
    }
    if not all(p.is_file() for p, _ in paths.values()):
        pytest.skip("GSM8K/MATH test sets not found in the shared data")
    return {name: read(path, field) for name, (path, field) in paths.items()}


@pytest.fixture(scope="module")
def settings(shared_data: Path) -> DecontamSettings:
    return DecontamSettings(
        enabled=True,
        benchmarks=[
            BenchmarkSource(path=str(shared_data / "gsm8k" / "test.jsonl"), name="gsm8k-test"),
            BenchmarkSource(path=str(shared_data / "math" / "test.jsonl"), name="math-test"),
        ],
    )


@pytest.fixture(scope="module")
def index(settings: DecontamSettings):
    return build_index(settings)


def probes(texts: list[str], lower_words: set[str], seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)

    def rename(q: str) -> str:
        names = [
            w
            for w in dict.fromkeys(re.findall(r"\b[A-Z][a-z]+\b", q))
            if w.lower() not in lower_words
        ]
        for i, name in enumerate(names):
            q = re.sub(rf"\b{name}\b", NAMES[i % len(NAMES)], q)
        return q

    def renumber(q: str) -> str:
        return re.sub(r"\d+", lambda m: str(int(m.group()) + rng.randint(1, 9)), q)

    out: dict[str, list[str]] = {}
    for kind, fn in (
        ("names", rename),
        ("numbers", renumber),
        ("appended", lambda q: q + APPENDIX),
    ):
        changed = [p for q in texts if (p := fn(q)) != q]
        out[kind] = changed[:200]
    return out


def test_every_paraphrased_leak_is_caught(index, data) -> None:
    lower_words = {
        w for texts in data.values() for t in texts for w in re.findall(r"\b[a-z]+\b", t)
    }
    total = 0
    for name, seed in (("gsm8k", 1), ("math", 2)):
        sets = probes(data[name], lower_words, seed)
        for kind, texts in sets.items():
            missed = [t for t in texts if index.match(t) is None]
            print(f"{name} {kind}: {len(texts) - len(missed)}/{len(texts)} caught")
            assert not missed, missed[:3]
            total += len(texts)
        assert sum(len(t) for t in sets.values()) >= 200
    short = [q for q in data["math"] if len(streams(q, index.rule)[0]) < index.rule.n]
    print(f"MATH items shorter than {index.rule.n} tokens (whole-item rule): {len(short)}")
    assert len(short) > 100 and total >= 1000


def test_short_items_match_whole_not_fragments(index) -> None:
    assert index.match("Compute $\\dbinom{13}{4}$. Show your work.") is not None
    assert index.match("Compute the number of ways; use dbinom if you like.") is None


def test_clean_train_questions_are_rarely_flagged(index, data) -> None:
    """Measured: 5/2000 = 0.25% (template overlaps between GSM8K train and test)."""
    flagged = [(q, m) for q in data["train"][:2000] if (m := index.match(q)) is not None]
    rate = len(flagged) / 2000
    print(f"false-positive rate on 2000 GSM8K-train questions: {rate:.4f} ({len(flagged)})")
    for q, m in flagged:
        print(f"  {m.item}: {m.ngram!r} <- {q[:80]!r}")
    assert rate <= 0.005


def test_filter_rejects_with_benchmark_id_and_ngram(index, data) -> None:
    leak = Record.seed(data["gsm8k"][0].replace("Janet", "Maria") + APPENDIX, None, "gen")
    clean = Record.seed(data["train"][1], None, "gen")
    stage = Decontaminate(index, ["question"])
    kept = run_chain([stage], [leak, clean])
    assert kept == [clean]
    (rejected,) = stage.rejected
    assert rejected.reject_reason == "decontam:contaminated"
    assert rejected.reject_detail.startswith("gsm8k-test:1 (question): ")
    assert rejected.meta["contamination"]["benchmark"] == "gsm8k-test:1"
    assert "ducks lay" in rejected.meta["contamination"]["ngram"]
    assert stage.counters.as_dict()["decontam"]["dropped:contaminated"] == 1


def test_index_is_small_and_picklable(index) -> None:
    blob = pickle.dumps(index)
    print(f"index: {len(index.long_keys)} n-grams + {len(index.short_keys)} short items, "
          f"{len(index.items)} items, pickled {len(blob) / 1e6:.2f} MB")  # fmt: skip
    assert len(blob) < 4_000_000
    again = pickle.loads(blob)
    leak = "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and"
    assert again.match(leak) == index.match(leak) is not None


def test_code_field_and_solution_index(shared_data: Path, data) -> None:
    source = BenchmarkSource(
        path=str(shared_data / "math" / "test.jsonl"), name="math", fields=["problem", "solution"]
    )
    index = build_index(DecontamSettings(benchmarks=[source]))
    solution = read(shared_data / "math" / "test.jsonl", "solution")[5]
    record = Record.seed("A fresh question about trains.", None, "gen")
    record.code = f"def solution():\n    '''{solution}'''\n    return 1"
    assert run_chain([Decontaminate(index, ["question"])], [record]) == [record]
    assert run_chain([Decontaminate(index, ["question", "code"])], [record]) == []


def test_presets_and_settings(settings) -> None:
    assert settings.rule() == Rule(13, True, True)
    sky = DecontamSettings(preset="skywork", n=25)
    assert sky.rule() == Rule(25, False, False)
    with pytest.raises(ValidationError):
        DecontamSettings(presets="tinygsm")
    with pytest.raises(ValidationError):
        DecontamSettings(fields=["solution"])
    index = build_index(settings.model_copy(update={"preset": "skywork"}))
    text = read(Path(settings.benchmarks[0].path), "question")[3]
    assert index.match("Intro sentence here. " + text) is not None


def test_a_hub_benchmark_that_cannot_load_says_how_to_go_on_offline() -> None:
    """No network (the Hub's offline mode, so nothing is retried): one error naming the dataset
    and the two ways on, not the loader's traceback."""
    code = (
        "from orchestrator.quality.decontam import BenchmarkSource, DecontamSettings, build_index\n"
        "source = BenchmarkSource(path='openai/gsm8k', hf_config='main')\n"
        "build_index(DecontamSettings(benchmarks=[source]))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("orchestrator.core.seeds.SeedError: openai/gsm8k: could not load")
    assert "local file" in last and "--no-decontaminate" in last
