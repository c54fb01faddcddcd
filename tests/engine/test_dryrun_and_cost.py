"""--dry-run estimates without sending anything; runs report cost from the price table."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from orchestrator.cli.app import build_config
from orchestrator.core.records import Record
from orchestrator.engine.driver import run_job
from orchestrator.engine.dryrun import approx_tokens, estimate
from orchestrator.teacher.pricing import Price, default_prices, price_for
from tests.support.cli import run_cli
from tests.support.configs import make_config
from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply

SEEDS = [Record.seed(f"Ann has {i} red pens and {i + 4} blue pens. How many pens?", None, "t")
         for i in range(12)]  # fmt: skip


def test_price_table_and_override() -> None:
    assert price_for("gpt-4o-mini") == default_prices()["gpt-4o-mini"]
    assert price_for("openai/gpt-4o-mini") == default_prices()["gpt-4o-mini"]
    assert price_for("my-local-model") is None
    custom = Price(input_per_m=1.0, output_per_m=2.0)
    assert price_for("gpt-4o-mini", custom) is custom
    assert custom.cost(1_000_000, 500_000) == pytest.approx(2.0)


@pytest.mark.parametrize("method, per_seed", [("one-step", 1), ("two-step", 2 + 2 * 10)])
def test_dry_run_counts_requests_and_tokens(method: str, per_seed: int) -> None:
    cfg, _ = build_config("tinygsm", {
        "teacher": {"model": "gpt-4o-mini", "base_url": "http://127.0.0.1:9/v1"},
        "tinygsm": {"method": method},
    })  # fmt: skip
    info = estimate(cfg, SEEDS, sample=3)
    assert info["requests"] == per_seed * len(SEEDS)
    first = info["example_prompt"]
    assert "Ann has 0 red pens" in first
    assert info["prompt_tokens_per_request"] >= approx_tokens(first) * 0.9
    assert info["prompt_tokens"] == math.ceil(info["prompt_tokens_per_request"] * info["requests"])
    price = default_prices()["gpt-4o-mini"]
    assert info["cost_usd_min"] == round(price.cost(info["prompt_tokens"], 0), 4)
    assert info["cost_usd_max"] > info["cost_usd_min"]


def test_dry_run_cli_sends_nothing(tmp_path: Path) -> None:
    seeds = tmp_path / "s.jsonl"
    seeds.write_text("".join(f'{{"question": "{s.question}"}}\n' for s in SEEDS))
    with ScriptedServer(reply=tinygsm_reply) as srv:
        code, out = run_cli("run", "tinygsm", "--seeds", str(seeds), "--base-url", srv.base_url,
                            "--model", "gpt-4o-mini", "--dry-run", "--out", str(tmp_path / "o"))  # fmt: skip
        assert srv.request_count == 0
    assert code == 0 and "no request sent" in " ".join(out.split()) and "requests" in out
    assert not (tmp_path / "o").exists()


@pytest.mark.usefixtures("ray_local")
def test_run_reports_cost_from_usage(tmp_path: Path) -> None:
    with ScriptedServer(reply=tinygsm_reply) as srv:
        cfg = make_config(srv.base_url)
        cfg = cfg.model_copy(update={"teacher": cfg.teacher.model_copy(
            update={"price": Price(input_per_m=3.0, output_per_m=7.0)})})  # fmt: skip
        summary = run_job(cfg, SEEDS[:4], tmp_path / "out")
    expected = (summary["prompt_tokens"] * 3.0 + summary["completion_tokens"] * 7.0) / 1e6
    assert summary["cost_usd"] == pytest.approx(expected, rel=1e-6)
    assert summary["projected_cost_usd"] == pytest.approx(expected, rel=1e-6)  # all seeds done
