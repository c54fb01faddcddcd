"""The ETA from bursty seed counts: stable while the run is steady, honest when it stalls,
printed with a rounding it can keep. Snapshots are views with their own clock, as the driver
builds them every 0.5-1 s."""

from __future__ import annotations

import random
from typing import Any

from orchestrator.telemetry.eta import WARMUP_S, EtaEstimator, fmt_eta
from orchestrator.telemetry.progress import RateTracker


def snapshot(now: float, done: int, total: int) -> dict[str, Any]:
    return {"time": now, "total_seeds": total, "skipped": 0,
            "counters": {"seeds": {"accepted": done}}}  # fmt: skip


def bursty_run(total: int = 2000, seed: int = 7) -> list[tuple[float, int]]:
    """(time, seeds done) every second: chunks of 8-32 seeds finish together every 4-14 s
    (about 2.2 seeds/s on average), as with several workers committing chunks."""
    rng = random.Random(seed)
    points, done, now, next_burst = [], 0, 0.0, 8.0
    while done < total:
        now += 1.0
        if now >= next_burst:
            done = min(total, done + rng.choice([8, 16, 24, 32]))
            next_burst = now + rng.uniform(4, 14)
        points.append((now, done))
    return points


def test_a_bursty_run_gets_a_stable_eta() -> None:
    points = bursty_run()
    end = points[-1][0]
    tracker = RateTracker()
    finishes, shown = [], []  # when each snapshot's ETA says the run ends; what it prints
    for now, done in points:
        eta = tracker.update(snapshot(now, done, 2000)).eta_s
        if now >= 120 and done < 1800:  # past warm-up and a first window; before the tail
            assert eta is not None
            finishes.append(now + eta)
            shown.append(fmt_eta(eta))
    # every projection within 15% of the real end (a 15-s window gave 71 s ... 57 min here)
    assert min(finishes) > 0.85 * end and max(finishes) < 1.15 * end, (min(finishes), end)
    # a burst moves the projected end by less than 8% of the run
    jumps = [abs(b - a) for a, b in zip(finishes, finishes[1:], strict=False)]
    assert max(jumps) < 0.08 * end, max(jumps)
    # over ~700 snapshots the printed ETA counts down, changing at most 20 times
    changes = [(a, b) for a, b in zip(shown, shown[1:], strict=False) if a != b]
    assert len(changes) <= 20, changes
    assert shown[0] == "~15m" and shown[-1] == "~2m"


def test_no_eta_during_warm_up_then_one_from_the_warm_up_average() -> None:
    est = EtaEstimator()
    assert est.update(0.0, 0, 100) is None
    assert est.update(5.0, 10, 90) is None  # 10 seeds, but only 5 s seen
    assert est.update(WARMUP_S + 1, 20, 80) is not None
    assert est.update(WARMUP_S + 1, 20, 80) == 80 / (20 / (WARMUP_S + 1))


def test_a_stall_raises_the_eta_and_a_finished_run_has_none_left() -> None:
    est = EtaEstimator()
    for i in range(0, 61, 2):  # a steady 1 seed/s, a move every 2 s
        steady = est.update(float(i), i, 1000 - i)
    assert steady is not None and abs(steady - 940) < 50
    stalled = est.update(60.0 + 60, 60, 940)  # a minute with nothing finished
    assert stalled is not None and stalled > 4 * steady
    assert est.update(200.0, 1000, 0) == 0.0


def test_eta_is_printed_with_a_rounding_it_can_keep() -> None:
    cases = {None: "-", 0: "0m", 42: "<1m", 75: "~1m", 431: "~7m", 1500: "~25m",
             1620: "~25m", 3500: "~1h", 2 * 3600 + 14 * 60: "~2h15m", 3 * 86400 + 4 * 3600: "~3d4h"}  # fmt: skip
    for seconds, shown in cases.items():
        assert fmt_eta(seconds) == shown, (seconds, fmt_eta(seconds))
