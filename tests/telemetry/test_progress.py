"""The dashboard panel, plain lines and JSON events, drawn from known counters (no Ray).
The panel's fitting to 80x24 / 160x50 is tested in ``test_dashboard_fit``."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

from rich.console import Console

from orchestrator.output.store import OutputStore
from orchestrator.telemetry.counters import Counters
from orchestrator.telemetry.dashboard import Rates, render, sparkline
from orchestrator.telemetry.funnel import funnel_rows
from orchestrator.telemetry.progress import (
    PROGRESS_FILE,
    ProgressDisplay,
    ProgressFile,
    RateTracker,
    plain_line,
)


def view(**extra: Any) -> dict[str, Any]:
    return {
        "state": "running",
        "time": 1000.0,
        "job": {"pipeline": "tinygsm", "out": "/data/out"},
        "counters": {
            "one_step": {"seen": 10, "produced": 30, "dropped:unparsable": 1},
            "question_filter": {"seen": 29, "kept": 27, "dropped:too_short": 2},
            "execute": {
                "seen": 27,
                "kept": 20,
                "dropped:runtime_error": 6,
                "dropped:timeout": 1,
                "cpu_seconds": 2.5,
            },
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
        "gauges": {
            "in_flight": 6,
            "waiting": 4,
            "replicas": {"http://10.0.0.7:8000/v1": 5},
            "pending_commit": 9,
            "sandbox_queued": 40,
            "sandbox_running": 12,
            "sandbox_slots": 4,
            "sandbox_busy_s": 100.0,
        },
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


ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"


def panel_text(v: dict[str, Any], rates: Rates, width: int = 160, height: int = 50) -> str:
    console = Console(record=True, width=width, height=height, file=io.StringIO())
    console.print(render(v, rates))
    return console.export_text()


def cells(line: str) -> list[str]:
    """The cells of a table row inside the panel (its border removed)."""
    inner = line.strip().removeprefix("│").removesuffix("│")
    return [c.strip() for c in inner.split("│")[1:-1]]


def test_panel_shows_every_field_with_its_number() -> None:
    rates = Rates(prompt_tps=120.5, completion_tps=12.5, eta_s=75, history=[1, 4, 8],
                  sandbox_busy=0.97, sandbox_cpu_s=3.1)  # fmt: skip
    text = panel_text(view(), rates)
    expected = [
        "seeds 7/10 (70%)", "accepted 3", "rejected 1", "failed 1", "skipped 2", "ETA ~1m",
        "requests 7", "in flight 6", "waiting for a slot 4", "queued seeds 12",
        "queued chunks 3", "written 18", "pending commit 9", "prompt 120.5", "completion 12.5",
        "▁▄█", "prompt tokens 5000", "completion tokens 900", "elapsed 2m05s",
        "sandbox running 12", "queued 40", "busy 97% of 4 slots", "program time 3.1 s/s",
        "cost $0.0123", "projected $0.0456",
        "unparsable 1", "runtime_error 6, timeout 1", "duplicate 2",
        "worker-0", "worker-1", "restarting", "10.0.0.6", "dead", "0.4s ago",
        "http://10.0.0.7:8000/v1", "rate_limit x2", "latest: 429 slow down",
        "Ann has 3 apples and buys 4 more",
    ]  # fmt: skip
    for needle in expected:
        assert needle in text, needle
    row = next(line for line in text.splitlines() if "worker-1" in line)
    assert cells(row)[3:5] == ["restarting", "2"], row
    lines = text.splitlines()
    # funnel rows: stage, in, out, accept rate (a producing stage shows its yield)
    funnel = {"one_step": ["10", "30", "x3.0"], "question_filter": ["29", "27", "93%"],
              "execute": ["27", "20", "74%"], "dedup": ["20", "18", "90%"]}  # fmt: skip
    for stage, numbers in funnel.items():
        row = next(line for line in lines if f" {stage} " in line)
        assert cells(row)[1:4] == numbers, row


def test_written_is_the_committed_count_and_pending_rows_are_their_own_number() -> None:
    """Rows waiting to be committed are not a 0% stage: ``written`` shows what is durable."""
    v = view()
    v["counters"]["writer"]["rows"] = 0
    v["gauges"]["pending_commit"] = 578
    text = panel_text(v, Rates())
    row = next(line for line in text.splitlines() if "│ written " in line)
    assert cells(row)[1:] == ["", "0", "", "pending commit 578"], row
    assert "%" not in row
    assert "written 0  pending commit 578" in text  # the headline
    assert " written 0 pending_commit 578 " in plain_line(v, Rates())


def test_replica_rows_join_supervisor_phase_and_router_load() -> None:
    states = [
        {"index": 0, "phase": "healthy", "url": "http://10.0.0.7:8000/v1", "restarts": 0},
        {"index": 1, "phase": "restarting", "url": None, "restarts": 2, "last_failure": "died"},
    ]
    gauges = {"replicas": {"http://10.0.0.7:8000/v1": 5, "http://10.0.0.8:9000/v1": 1,
                           "http://10.0.0.9:9000/v1": 0}}  # fmt: skip
    # (120 columns: the replica table on its own lines, not beside the actors)
    text = panel_text(view(replica_states=states, gauges=gauges), Rates(), width=120)
    rows = {c[0]: c[1:] for line in text.splitlines() if len(c := cells(line)) == 5}
    assert rows["0"] == ["http://10.0.0.7:8000/v1", "healthy", "0", "5"]
    assert rows["1"] == ["-", "restarting", "2 (died)", "-"]
    assert rows["?"] == ["http://10.0.0.8:9000/v1", "-", "-", "1"]  # still routed to
    assert "10.0.0.9" not in text  # an old address nobody uses any more


def test_funnel_order_generated_filtered_deduplicated() -> None:
    counters = Counters(view()["counters"])
    counters.add("near_dedup", "seen", 18)
    counters.add("near_dedup", "kept", 17)
    stages = [row.stage for row in funnel_rows(counters)]
    assert stages == ["one_step", "question_filter", "execute", "dedup", "near_dedup"]


def test_rates_come_from_the_views_own_clock() -> None:
    tracker = RateTracker()
    first = view()
    tracker.update(first)
    later = json.loads(json.dumps(first))
    later["time"] = 1010.0
    later["counters"]["teacher"].update(prompt_tokens=6000, completion_tokens=1400)
    later["counters"]["execute"]["cpu_seconds"] = 12.5
    later["gauges"]["sandbox_busy_s"] = 130.0  # 30 slot-seconds in 10 s of 4 slots
    later["counters"]["seeds"]["accepted"] = 5  # 2 more seeds in 10 s
    rates = tracker.update(later)
    assert rates.prompt_tps == 100 and rates.completion_tps == 50
    assert rates.seeds_per_s == 0.2
    assert rates.sandbox_busy == 0.75 and rates.sandbox_cpu_s == 1.0
    assert rates.eta_s is None  # still warming up (test_eta)
    assert rates.history == [0.0, 150.0]  # one sparkline bar per 5 s step
    assert sparkline([0, 5, 10]) == "▁▄█" and sparkline([]) == ""


def test_plain_lines_when_not_a_terminal_one_per_event_timestamped_unwrapped() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=False)
    with ProgressDisplay(console, log_every_s=0) as display:
        assert display.mode == "plain"
        display.step("starting Ray")
        display.update(view())
        display.update(view(time=1001.0, state="finished"))
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines  # start step, start-up summary, two progress lines
    assert all(re.match(ISO + " ", line) for line in lines), lines
    assert "[start +0.0s] starting Ray" in lines[0] and "ready after" in lines[1]
    assert lines[2].startswith("1970-01-01T00:16:40+00:00 [progress] running seeds 7/10")
    assert " written 18 pending_commit 9 requests 7 in_flight 6 waiting 4 " in lines[2]
    assert "sandbox running 12 queued 40" in lines[2] and lines[2].endswith("cost $0.0123")
    assert len(lines[2]) > 80  # longer than the console, and still one line
    assert "\x1b" not in out.getvalue()


def test_engine_warnings_are_display_lines_timestamped_and_never_markup() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=False)
    with ProgressDisplay(console) as display, display.showing_warnings("orchestrator"):
        display.step("checking the teacher")
        logging.getLogger("orchestrator.engine.driver").warning("HTTP 500 [/] starting anyway")
        logging.getLogger("orchestrator.engine.driver").info("not shown")
    logging.getLogger("orchestrator.engine.driver").warning("after: not this display's")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(re.match(ISO + " ", line) for line in lines), lines
    assert lines[1].endswith("[warning] HTTP 500 [/] starting anyway")


def test_a_start_up_that_fails_says_where() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=False)
    try:
        with ProgressDisplay(console) as display:
            display.step("starting Ray")
            raise RuntimeError("no Ray")
    except RuntimeError:
        pass
    assert "[start] stopped during starting Ray after 0.0s" in out.getvalue()


def test_json_events_one_per_line_throttled_final_always() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(Console(file=io.StringIO()), mode="json", stream=stream)
    with display:
        display.step("starting Ray")
        display.update(view())
        display.update(view(time=1000.2))  # within json_every_s: not printed
        display.update(view(time=1000.4, state="finished"))  # final: always printed
        display.finish({"rows_written": 18})
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["startup", "progress", "progress", "summary"]
    assert all(e["schema"] == 1 for e in events)
    assert events[0]["step"] == "starting Ray" and isinstance(events[0]["elapsed_s"], float)
    assert [e.get("state") for e in events[1:3]] == ["running", "finished"]
    assert events[1]["counters"]["writer"]["rows"] == 18
    assert events[3]["summary"] == {"rows_written": 18}


def test_json_counts_are_integers_whatever_the_view_holds() -> None:
    """Counters summed as floats (or read from an older progress file) print as integers;
    measurements (``*_seconds``, ``*_s``) stay floats."""
    v = view()
    v["counters"]["writer"]["rows"] = 18.0
    v["counters"]["teacher"]["requests"] = 7.0
    v["gauges"]["in_flight"] = 6.0
    stream = io.StringIO()
    with ProgressDisplay(Console(file=io.StringIO()), mode="json", stream=stream) as display:
        display.update(v)
    line = stream.getvalue().strip()
    event = json.loads(line)
    for group, names in event["counters"].items():
        for name, value in names.items():
            measure = name.endswith(("_seconds", "_s"))
            assert isinstance(value, float if measure else int), (group, name, value)
    assert '"rows": 18,' in line or '"rows": 18}' in line
    assert event["gauges"]["in_flight"] == 6 and isinstance(event["gauges"]["in_flight"], int)
    assert isinstance(event["gauges"]["sandbox_busy_s"], float)


def test_progress_file_is_rewritten_at_most_every_interval(tmp_path: Path) -> None:
    store = OutputStore(tmp_path)
    writer = ProgressFile(store, every_s=60)
    writer.update(view())
    writer.update(view(skipped=5))  # too soon: not written
    assert store.read_json(PROGRESS_FILE)["skipped"] == 2
    writer.update(view(state="finished", skipped=6))  # a final view is always written
    assert store.read_json(PROGRESS_FILE)["state"] == "finished"
    files = [p for p in (tmp_path / "_mathsynth").rglob("*") if p.is_file()]
    assert files == [tmp_path / PROGRESS_FILE]  # no temporary file left behind


def test_watch_draws_the_same_panel_as_run_after_the_progress_file(tmp_path: Path) -> None:
    """The file keeps the view's key order, so the funnel (ordered as the counters first saw
    each stage) and everything else comes out of ``watch`` exactly as ``run`` drew it."""
    store = OutputStore(tmp_path)
    v = view()
    ProgressFile(store).update(v)
    back = store.read_json(PROGRESS_FILE)
    assert list(back["counters"]) == list(v["counters"])
    rates = Rates(eta_s=75)
    assert panel_text(back, rates) == panel_text(v, rates)
    for size in ((80, 24), (160, 50)):
        assert panel_text(back, rates, *size) == panel_text(v, rates, *size)
