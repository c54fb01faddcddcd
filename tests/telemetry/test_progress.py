"""The dashboard panel, plain lines and JSON events, drawn from known counters (no Ray)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from orchestrator.output.store import OutputStore
from orchestrator.telemetry.counters import Counters
from orchestrator.telemetry.dashboard import Rates, funnel_rows, render, sparkline
from orchestrator.telemetry.progress import (
    PROGRESS_FILE,
    ProgressDisplay,
    ProgressFile,
    RateTracker,
)


def view(**extra: Any) -> dict[str, Any]:
    return {
        "state": "running",
        "time": 1000.0,
        "job": {"pipeline": "tinygsm", "out": "/data/out"},
        "counters": {
            "one_step": {"seen": 10, "produced": 30, "dropped:unparsable": 1},
            "execute": {"seen": 30, "kept": 20, "dropped:runtime_error": 6, "dropped:timeout": 4},
            "dedup": {"seen": 20, "kept": 18, "dropped:duplicate": 2},
            "seeds": {"accepted": 3, "rejected": 1, "failed": 1},
            "teacher": {
                "requests": 7,
                "prompt_tokens": 5000,
                "completion_tokens": 900,
                "error:rate_limit": 2,
            },
            "writer": {"rows": 18, "shards": 2},
        },  # fmt: skip
        "gauges": {"in_flight": 6, "waiting": 4, "replicas": {"http://10.0.0.7:8000/v1": 5}},
        "queued": {"chunks": 3, "seeds": 12, "outstanding_chunks": 2},
        "actors": [
            {
                "name": "worker-0",
                "state": "alive",
                "node": "10.0.0.5",
                "last_push_s": 0.4,
                "in_flight": 4,
            },
            {
                "name": "worker-1",
                "state": "restarting",
                "restarts": 2,
                "node": "10.0.0.6",
                "last_push_s": 7.0,
                "in_flight": 2,
            },
        ],  # fmt: skip
        "nodes": [
            {"node": "10.0.0.5", "state": "alive", "actors": 1},
            {"node": "10.0.0.6", "state": "dead", "actors": 0},
        ],  # fmt: skip
        "errors": [{"kind": "rate_limit", "message": "429 slow down", "worker": "worker-0"}],
        "recent": [{"question": "Ann has 3 apples and buys 4 more. How many?", "answer": "7"}],
        "total_seeds": 10,
        "skipped": 2,
        "elapsed_s": 125,
        "cost_usd": 0.0123,
        "projected_cost_usd": 0.0456,
        **extra,
    }


def test_panel_shows_every_field_with_its_number() -> None:
    console = Console(record=True, width=160)
    rates = Rates(prompt_tps=120.5, completion_tps=12.5, eta_s=75, history=[1, 4, 8])
    console.print(render(view(), rates))
    text = console.export_text()
    expected = [
        "seeds 7/10", "accepted 3", "rejected 1", "failed 1", "skipped 2", "ETA 1m15s",
        "requests 7", "in flight 6", "waiting for a slot 4", "queued seeds 12",
        "queued chunks 3", "rows 18", "prompt 120.5", "completion 12.5", "▁▄█",
        "prompt tokens 5000", "completion tokens 900", "elapsed 2m05s",
        "cost $0.0123", "projected $0.0456",
        "unparsable 1", "runtime_error 6, timeout 4", "duplicate 2",
        "worker-0", "worker-1", "restarting", "10.0.0.6", "dead", "0.4s ago",
        "http://10.0.0.7:8000/v1", "rate_limit x2", "latest: 429 slow down",
        "Ann has 3 apples and buys 4 more",
    ]  # fmt: skip
    for needle in expected:
        assert needle in text, needle
    row = next(line for line in text.splitlines() if "worker-1" in line)
    assert [c.strip() for c in row.split("│")[1:-1]][3:5] == ["restarting", "2"], row
    lines = text.splitlines()
    # funnel rows: stage, in, out, accept rate (a producing stage shows its yield)
    for stage, numbers in {"one_step": ["10", "30", "x3.0"], "execute": ["30", "20", "67%"],
                           "dedup": ["20", "18", "90%"], "written": ["18", "18", "100%"]}.items():  # fmt: skip
        row = next(line for line in lines if f" {stage} " in line)
        assert [c.strip() for c in row.split("│")[2:5]] == numbers, row


def test_replica_rows_join_supervisor_phase_and_router_load() -> None:
    states = [
        {"index": 0, "phase": "healthy", "url": "http://10.0.0.7:8000/v1", "restarts": 0},
        {"index": 1, "phase": "restarting", "url": None, "restarts": 2, "last_failure": "died"},
    ]
    gauges = {"replicas": {"http://10.0.0.7:8000/v1": 5, "http://10.0.0.8:9000/v1": 1,
                           "http://10.0.0.9:9000/v1": 0}}  # fmt: skip
    console = Console(record=True, width=160)
    console.print(render(view(replica_states=states, gauges=gauges), Rates()))
    rows = {
        cells[0]: cells[1:]
        for line in console.export_text().splitlines()
        if len(cells := [c.strip() for c in line.split("│")[1:-1]]) == 5
    }
    assert rows["0"] == ["http://10.0.0.7:8000/v1", "healthy", "0", "5"]
    assert rows["1"] == ["-", "restarting", "2 (died)", "-"]
    assert rows["?"] == ["http://10.0.0.8:9000/v1", "-", "-", "1"]  # still routed to
    assert "10.0.0.9" not in console.export_text()  # an old address nobody uses any more


def test_funnel_order_generated_filtered_deduplicated_written() -> None:
    counters = Counters(view()["counters"])
    counters.add("near_dedup", "seen", 18)
    counters.add("near_dedup", "kept", 17)
    stages = [row[0] for row in funnel_rows(counters)]
    assert stages == ["one_step", "execute", "dedup", "near_dedup", "written"]


def test_rates_come_from_the_views_own_clock() -> None:
    tracker = RateTracker()
    first = view()
    tracker.update(first)
    later = json.loads(json.dumps(first))
    later["time"] = 1010.0
    later["counters"]["teacher"].update(prompt_tokens=6000, completion_tokens=1400)
    later["counters"]["seeds"]["accepted"] = 5  # 2 more seeds in 10 s; 1 left
    rates = tracker.update(later)
    assert rates.prompt_tps == 100 and rates.completion_tps == 50
    assert rates.seeds_per_s == 0.2 and rates.eta_s == 5.0
    assert rates.history == [0.0, 150.0]  # one sparkline bar per 5 s step
    assert sparkline([0, 5, 10]) == "▁▄█" and sparkline([]) == ""


def test_plain_lines_when_not_a_terminal() -> None:
    console = Console(record=True, width=200, force_terminal=False)
    with ProgressDisplay(console, log_every_s=0) as display:
        assert display.mode == "plain"
        display.update(view())
    line = console.export_text()
    assert line.startswith("[progress] running seeds 7/10 rows 18 requests 7 in_flight 6")
    assert "waiting 4" in line and "cost $0.0123" in line


def test_json_events_one_per_line_throttled_final_always() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(Console(file=io.StringIO()), mode="json", stream=stream)
    with display:
        display.update(view())
        display.update(view(time=1000.2))  # within json_every_s: not printed
        display.update(view(time=1000.4, state="finished"))  # final: always printed
        display.finish({"rows_written": 18})
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["progress", "progress", "summary"]
    assert [e.get("state") for e in events[:2]] == ["running", "finished"]
    assert events[0]["counters"]["writer"]["rows"] == 18
    assert events[2]["summary"] == {"rows_written": 18}


def test_progress_file_is_rewritten_at_most_every_second(tmp_path: Path) -> None:
    store = OutputStore(tmp_path)
    writer = ProgressFile(store, every_s=60)
    writer.update(view())
    writer.update(view(skipped=5))  # too soon: not written
    assert store.read_json(PROGRESS_FILE)["skipped"] == 2
    writer.update(view(state="finished", skipped=6))  # a final view is always written
    assert store.read_json(PROGRESS_FILE)["state"] == "finished"
    files = [p for p in (tmp_path / "_mathsynth").rglob("*") if p.is_file()]
    assert files == [tmp_path / PROGRESS_FILE]  # no temporary file left behind
