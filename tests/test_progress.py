from rich.console import Console

from orchestrator.progress import ProgressDisplay, RateWindow, render


def view() -> dict:
    return {
        "counters": {
            "seeds": {"accepted": 3, "rejected": 1, "failed": 1},
            "teacher": {"requests": 7, "completion_tokens": 900, "error:bad_request": 1},
            "execute": {"seen": 20, "kept": 15, "dropped:runtime_error": 5},
            "writer": {"rows": 42},
        },
        "gauges": {"in_flight": 6},
        "errors": ["bad_request: boom"],
        "total_seeds": 10,
        "skipped": 2,
    }


def test_panel_shows_the_counters() -> None:
    console = Console(record=True, width=120)
    console.print(render(view(), tokens_per_s=12.5, eta_s=75))
    text = console.export_text()
    for expected in ("seeds 7/10", "accepted 3", "failed 1", "rows 42", "in flight 6",
                     "requests 7", "tokens/s 12.5", "ETA 1m15s", "runtime_error 5", "75%",
                     "bad_request"):  # fmt: skip
        assert expected in text, expected


def test_rate_window() -> None:
    w = RateWindow()
    assert w.add(0, now=0.0) == 0
    assert w.add(100, now=2.0) == 50
    assert w.add(100, now=100.0) < 50  # old points leave the window


def test_plain_lines_when_not_a_terminal() -> None:
    console = Console(record=True, width=120, force_terminal=False)
    with ProgressDisplay(console, log_every_s=0) as display:
        display.update(view())
    assert "[progress] seeds 7/10 rows 42 requests 7" in console.export_text()
