"""The dataset card: Hub metadata that ``huggingface_hub`` parses offline, configs that exist,
the funnel with accept rates, dedup/decontamination figures, prompt hashes, a runnable
configuration, no local path; rewritten from disk after every run, resumed ones included."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import datasets
import pytest
import yaml
from huggingface_hub import DatasetCard

from orchestrator.core.config import PipelineConfig, validate_pipeline
from orchestrator.core.seeds import load_seeds
from orchestrator.engine.driver import run_job
from orchestrator.output.card import write_card
from orchestrator.output.portable import leaks
from orchestrator.output.store import OutputStore
from tests.support.configs import make_config
from tests.support.scripted_server import ScriptedServer
from tests.support.small_output import KEPT, TEMPLATE, make_output, small_config
from tests.support.tinygsm_teacher import tinygsm_reply


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def table_row(text: str, first: str) -> list[str]:
    """Cells of the markdown table row whose first cell is ``first``."""
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {first} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def config_block(text: str) -> dict[str, Any]:
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block is not None
    return yaml.safe_load(block.group(1))


def test_card_metadata_figures_and_configs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = small_config(license="cc-by-4.0", tags=["grade-school"])
    store = make_output(str(out), cfg=cfg)
    written = write_card(store)
    assert written["card"] == "README.md"
    card = DatasetCard.load(out / "README.md")  # huggingface_hub's own parser, offline
    data = card.data
    assert data.license == "cc-by-4.0" and data.language == ["en"]
    assert data.task_categories == ["text-generation", "question-answering"]
    assert data.size_categories == ["n<1K"] and data.pretty_name == "mathsynth tinygsm"
    assert {"synthetic", "math", "mathsynth", "tinygsm", "grade-school"} <= set(data.tags)
    # only the configs that have files: no verifier split here
    configs = {c["config_name"]: c["data_files"][0]["path"] for c in data.configs}
    assert configs == {"default": "data/train-*.parquet", "rejected": "rejected/rejected-*.parquet"}
    assert datasets.load_dataset(str(out), split="train").num_rows == len(KEPT)
    assert datasets.load_dataset(str(out), "rejected", split="train").num_rows == 4
    with pytest.raises(ValueError):  # not declared, so not half-loaded
        datasets.load_dataset(str(out), "verifier", split="train")

    text = card.text
    # the funnel: items in, dropped, out, accept rate per stage, in pipeline order
    assert table_row(text, "one_step")[:5] == ["one_step", "8", "0", "8", "100.0%"]
    assert table_row(text, "question_filter")[:5] == ["question_filter", "8", "2", "6", "75.0%"]
    assert table_row(text, "execute")[:5] == ["execute", "6", "1", "5", "83.3%"]
    assert table_row(text, "dedup")[:5] == ["dedup", "5", "1", "4", "80.0%"]
    assert table_row(text, "near_dedup")[:5] == ["near_dedup", "4", "0", "4", "100.0%"]
    order = [text.index(f"| {s} |") for s in ("one_step", "question_filter", "execute", "dedup")]
    assert order == sorted(order)
    assert "3 with a recorded outcome" not in text and "4 with a recorded outcome" in text
    assert "dropped 1 of 5 items (20.0%)" in text  # exact dedup
    assert "Decontamination: off" in text
    assert table_row(text, "`dedup:duplicate`") == ["`dedup:duplicate`", "1"]
    assert table_row(text, f"`{TEMPLATE[0]}`") == [f"`{TEMPLATE[0]}`", f"`{TEMPLATE[1]}`", "8"]
    assert (
        f"Configuration fingerprint: `{store.read_json('_mathsynth/run.json')['fingerprint']}`"
        in text
    )
    # plots are linked by relative paths and exist
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(links) == sorted(p for k, p in written.items() if k != "card") and len(links) == 5
    assert all((out / link).is_file() for link in links)
    # the configuration reproduces the run: it validates to the same pipeline
    again = validate_pipeline(config_block(text), "card")
    assert again.tinygsm == cfg.tinygsm and again.card == cfg.card and again.dedup == cfg.dedup
    assert "mathsynth run pipeline.yaml --seeds seeds.jsonl --out out" in text
    assert "--base-url URL" in text  # the teacher was on a loopback address: not published
    assert leaks(card.content) == [] and str(tmp_path) not in card.content


def test_card_without_data_declares_no_config(tmp_path: Path) -> None:
    store = OutputStore(tmp_path / "out")
    store.prepare()  # before any run: a card that declares nothing
    card = DatasetCard.load(tmp_path / "out" / "README.md")
    assert "configs" not in card.data.to_dict() and card.data.license == "unknown"
    assert "No run has committed any data yet" in card.text


def test_card_is_rewritten_after_a_resumed_run(tmp_path: Path, gsm8k_train: Path,
                                               shared_data: Path, ray_local: None) -> None:  # fmt: skip
    """Two runs into one directory (the second resumes): the card covers both, its funnel agrees
    with what the stages themselves counted, and the verifier config appears with its files."""
    out = tmp_path / "out"
    benchmark = shared_data / "gsm8k" / "test.jsonl"
    views: list[dict[str, Any]] = []
    with ScriptedServer(reply=tinygsm_reply) as srv:
        cfg = make_config(srv.base_url, method="two-step", two_step_families=["variants"],
                          verifier={"enabled": True, "samples": 2})  # fmt: skip
        decontam = {"enabled": True, "benchmarks": [{"path": str(benchmark)}]}
        cfg = PipelineConfig.model_validate({**cfg.model_dump(), "decontamination": decontam})
        seeds = load_seeds(str(gsm8k_train), cfg.seeds, limit=5)
        first = run_job(cfg, seeds[:2], out, on_progress=views.append)
        first_view = views[-1]
        second = run_job(cfg, seeds, out, on_progress=views.append)
    assert second["seeds_skipped_already_finished"] == 2
    card = DatasetCard.load(out / "README.md")
    text = card.text
    assert {c["config_name"] for c in card.data.configs} == {"default", "rejected", "verifier"}
    rows = int(first["rows_written"] + second["rows_written"])
    assert rows == second["rows_total"] and table_row(text, "**kept**")[3] == f"**{rows}**"

    def seen(stage: str) -> int:
        return sum(
            int(v["counters"].get(stage, {}).get("seen", 0)) for v in (first_view, views[-1])
        )

    for stage in ("two_step_program", "execute", "decontam", "dedup", "near_dedup"):
        assert int(table_row(text, stage)[1]) == seen(stage), stage  # items in = items seen
    assert "against `test.jsonl`" in text and str(benchmark) not in text  # a name, not a path
    assert "Verifier split:" in text
    for name in ("funnel", "question_length", "solution_length", "answers", "rejections"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mathsynth run pipeline.yaml --seeds train.jsonl" in text
    assert leaks(card.content) == [] and str(tmp_path) not in card.content
