"""k-center greedy core sets over MinHash sketches, and stage-2 seed files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.core.seeds import SeedConfig, load_seeds
from orchestrator.methods.skywork.coreset import kcenter_greedy, main, parse_difficulty

TOPICS = [
    "A train leaves the station at noon and travels at a constant speed of {n} miles per "
    "hour toward a city that is three hundred miles away across the plains",
    "Find the number of positive divisors of the integer {n} that are perfect squares and "
    "also leave remainder one when divided by four",
    "In a right triangle the two legs measure {n} centimeters and twelve centimeters so "
    "compute the length of the hypotenuse in simplest radical form",
    "A bag contains {n} red marbles and five blue marbles and two marbles are drawn without "
    "replacement so what is the probability that both are red",
]


def clustered(sizes: list[int]) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for label, (topic, size) in enumerate(zip(TOPICS, sizes, strict=False)):
        for i in range(size):
            texts.append(topic.format(n=10 + i))  # near-duplicates within a cluster
            labels.append(label)
    return texts, labels


def test_kcenter_picks_one_item_per_cluster_whatever_the_cluster_sizes() -> None:
    texts, labels = clustered([30, 2, 2, 2])
    picked = kcenter_greedy(texts, 4)
    assert picked[0] == 0 and len(set(picked)) == 4
    assert sorted(labels[i] for i in picked) == [0, 1, 2, 3]
    # a random sample of 4 would mostly stay inside the big cluster; the core set spreads out
    assert sum(labels[i] == 0 for i in picked) == 1


def test_kcenter_is_deterministic_and_bounded() -> None:
    texts, _ = clustered([5, 5, 5, 5])
    assert kcenter_greedy(texts, 6) == kcenter_greedy(texts, 6)
    assert kcenter_greedy(texts, 0) == [] and kcenter_greedy([], 3) == []
    assert sorted(kcenter_greedy(texts, 100)) == list(range(len(texts)))
    assert kcenter_greedy(texts, 3, first=7)[0] == 7


def test_parse_difficulty() -> None:
    assert parse_difficulty("Level 4") == 4.0
    assert parse_difficulty(5) == 5.0 and parse_difficulty("3.5") == 3.5
    assert parse_difficulty(None) is None and parse_difficulty("Level ?") is None


def test_stage2_seed_file_keeps_hard_lineages_only(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.jsonl"
    raw = [
        {"problem": f"Seed problem number {i} about {TOPICS[i % 4][:40]}?",
         "solution": f"\\boxed{{{i}}}", "level": f"Level {i + 1}"}
        for i in range(5)
    ]  # fmt: skip
    seeds.write_text("".join(json.dumps(r) + "\n" for r in raw))
    loaded = load_seeds(str(seeds), SeedConfig())
    hard_ids = {s.id for s in loaded[3:]}  # levels 4 and 5
    rows = []
    for s in loaded:
        texts, _ = clustered([3, 3, 3, 3])
        for j, text in enumerate(texts):
            rows.append({"id": f"{s.id}-{j}", "seed_id": s.id, "question": f"{text} ({s.id})",
                         "gold_answer": str(j) if j % 2 else None})  # fmt: skip
    (tmp_path / "s1" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "s1" / "data" / "train-a.parquet")
    out = tmp_path / "stage2.jsonl"
    assert main([str(tmp_path / "s1"), "--out", str(out), "--size", "6", "--seeds", str(seeds),
                 "--difficulty-field", "level", "--min-difficulty", "4"]) == 0  # fmt: skip
    written = [json.loads(line) for line in out.read_text().splitlines()]
    core = [r for r in written if r["source"] == "skywork-stage1-coreset"]
    hard = [r for r in written if r["source"] == "hard-seed"]
    assert len(core) == 6 and {r["seed_id"] for r in core} <= hard_ids
    assert {r["seed_id"] for r in hard} == hard_ids and {r["difficulty"] for r in hard} == {4, 5}
    # the file is a valid seed file; answers only where stage 1 had a verified gold answer
    again = load_seeds(str(out), SeedConfig())
    assert len(again) == 8
    by_q = {r["question"]: r for r in written}
    for seed in again:
        assert seed.gold_answer == by_q[seed.question]["answer"]


def test_difficulties_through_a_seed_descriptor(tmp_path: Path) -> None:
    from orchestrator.methods.skywork.coreset import seed_difficulties

    seeds = tmp_path / "raw.jsonl"
    seeds.write_text(
        json.dumps({"q": "What is 2 + 2?", "sol": "\\boxed{4}", "level": "Level 5"}) + "\n"
    )
    descriptor = tmp_path / "d.yaml"
    descriptor.write_text(f"path: {seeds}\nquestion_field: q\nanswer_field: sol\n")
    found = seed_difficulties(str(descriptor), "level")
    (seed,) = load_seeds(str(descriptor), SeedConfig())
    assert found == {seed.id: (5.0, {"question": "What is 2 + 2?", "answer": "4"})}
