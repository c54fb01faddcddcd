"""The panel fits the terminal it is drawn on: at 80x24 every line fits the width (cut, never
wrapped) and the panel the height (low-priority sections compacted or dropped); at 160x50 it
uses the room (every section in full, actors beside replicas). Drawn with rich's own console
at a fixed size, as ``rich.live.Live`` draws it."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console

from orchestrator.telemetry.dashboard import Rates, render
from tests.telemetry.test_progress import view

RATES = Rates(prompt_tps=1234.5, completion_tps=987.6, eta_s=1500, history=[float(i) for i in
              range(60)], sandbox_busy=0.93, sandbox_cpu_s=7.25)  # fmt: skip
SKYWORK_STAGES = ["skywork_plan", "rephrase", "fobar", "self_verification", "answer_augmentation",
                  "evol_instruct", "self_correction", "question_filter", "solve", "verify"]  # fmt: skip


def big_view() -> dict[str, Any]:
    """A busy cluster run: ten stages with many reasons, four actors on three nodes, three
    teacher replicas, long error messages, long questions, a long output URL."""
    v = view(job={"pipeline": "skywork-math-stage1", "out": "s3://a-very-long-bucket-name/"
                  "datasets/skywork/stage1/run-2024-06-01T12-00-00"})  # fmt: skip
    counters: dict[str, dict[str, int | float]] = {}
    for i, stage in enumerate(SKYWORK_STAGES):
        reasons = {f"dropped:reason_number_{k}_with_a_long_name": 3 * k + i for k in range(5)}
        counters[stage] = {"seen": 5400 - 100 * i, "kept": 5100 - 100 * i, **reasons}
    counters["rephrase"]["produced"] = 12000
    v["counters"] = {**counters, **{k: view()["counters"][k] for k in ("seeds", "teacher",
                                                                        "writer")}}  # fmt: skip
    v["actors"] = [
        {"name": f"worker-{i}", "state": "alive" if i else "restarting", "node": f"10.0.0.{i}",
         "last_push_s": 0.3 * i, "in_flight": 16, "restarts": 1 - min(i, 1)}
        for i in range(4)
    ]  # fmt: skip
    v["nodes"] = [{"node": f"10.0.0.{i}", "state": "alive", "actors": 2} for i in range(3)]
    v["replica_states"] = [
        {"index": i, "phase": "healthy", "url": f"http://10.0.1.{i}:8000/v1", "restarts": 0}
        for i in range(3)
    ]
    v["gauges"]["replicas"] = {f"http://10.0.1.{i}:8000/v1": 20 + i for i in range(3)}
    v["errors"] = [{"kind": kind, "message": "upstream said: " + "very long detail " * 30}
                   for kind in ("rate_limit", "timeout", "server_error")]  # fmt: skip
    v["counters"]["teacher"].update({"error:timeout": 4, "error:server_error": 1})
    v["recent"] = [{"question": "A long question about trains and apples " * 8, "answer": "42"}
                   for _ in range(3)]  # fmt: skip
    return v


def draw(v: dict[str, Any], width: int, height: int) -> list[str]:
    console = Console(record=True, width=width, height=height, file=io.StringIO())
    console.print(render(v, RATES))
    return console.export_text().splitlines()


@pytest.mark.parametrize("size", [(80, 24), (160, 50), (100, 30), (60, 14), (40, 8)])
@pytest.mark.parametrize("make", [view, big_view], ids=["small", "big"])
def test_every_line_fits_the_width_and_the_panel_the_height(make: Any, size: Any) -> None:
    width, height = size
    lines = draw(make(), width, height)
    assert len(lines) <= height, "\n".join(lines)
    assert all(cell_len(line) <= width for line in lines), "\n".join(lines)
    assert lines[0].startswith("╭") and lines[-1].startswith("╰"), "\n".join(lines)
    assert "seeds 7/10" in lines[1]  # whatever is cut, it is not the top


def test_80x24_keeps_what_matters_unwrapped() -> None:
    lines = draw(big_view(), 80, 24)
    text = "\n".join(lines)
    for needle in ("seeds 7/10 (70%)", "ETA ~25m", "written 18", "pending commit 9",
                   "requests 7", "in flight 6", "waiting for a slot 4",
                   "sandbox running 12", "busy 93% of 4 slots", "errors"):  # fmt: skip
        assert needle in text, needle  # each on one line: a wrapped item would be split
    # every stage is one funnel row (compact: no table title), the written row last
    rows = [line for line in lines if any(f" {s} " in line for s in SKYWORK_STAGES)]
    # the producing stage first, then the filters as the counters first saw them
    assert [next(s for s in SKYWORK_STAGES if f" {s} " in r) for r in rows] == [
        "rephrase",
        *[s for s in SKYWORK_STAGES if s != "rephrase"],
    ]
    row = next(r for r in rows if " solve " in r)
    assert " 4600 " in row and " 4300 " in row and " 93% " in row, row  # in, out, accept kept
    assert any(" written " in line and "pending commit 9" in line for line in lines)
    # no room left for the low-priority sections: recent rows, actors and replicas are gone
    for gone in ("recent accepted rows", "nodes and actors", "worker-", "teacher replicas"):
        assert gone not in text, gone
    # with fewer stages they come back as one line each
    small = "\n".join(draw(view(), 80, 24))
    assert "actors 1 alive, 1 restarting (2 restarts)  nodes 1/2 alive" in small
    assert "teacher replicas 1 routed  in flight 5" in small
    assert "recent accepted rows" not in small


def test_160x50_uses_the_room() -> None:
    lines = draw(big_view(), 160, 50)
    text = "\n".join(lines)
    assert len(lines) > 24
    for needle in ("filter funnel", "rejected by reason", "nodes and actors", "teacher replicas",
                   "recent accepted rows", "latest: upstream said", "s3://a-very-long-bucket"):  # fmt: skip
        assert needle in text, needle
    # actors beside replicas: one line holds a worker row and a replica row
    assert any("10.0.0.0" in line and "http://10.0.1.0:8000/v1" in line for line in lines)
    # the headline flows its groups side by side: seeds and written on one line
    assert any("seeds 7/10" in line and "written 18" in line for line in lines)


def test_a_terminal_too_small_for_the_funnel_says_so() -> None:
    lines = draw(big_view(), 60, 14)
    assert len(lines) <= 14
    assert any("more lines: enlarge the terminal" in line for line in lines), "\n".join(lines)


def test_an_actor_table_too_wide_for_the_terminal_is_one_line() -> None:
    text = "\n".join(draw(view(), 80, 60))  # room enough in height, not in width
    assert "nodes and actors" not in text and "actors 1 alive, 1 restarting" in text
    assert "nodes and actors" in "\n".join(draw(view(), 100, 60))
