"""``orchestrator.engine.failure_stop``: which teacher failures repeat on every request, and
when the first seeds' failures stop a run (the end-to-end stop is in
``tests/cli/test_fail_fast.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.engine.failure_stop import COUNTER, FailureStop, signature
from orchestrator.teacher.errors import TeacherError


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TeacherError("m", "bad_request", 400), "bad_request"),
        (TeacherError("m", "not_found", 404), "not_found"),
        (TeacherError("m", "client_error", 418), "client_error:418"),
        (TeacherError("m", "malformed_reply", cause="html_body"), "malformed_reply:html_body"),
        (TeacherError("m", "retries_exhausted", cause="connection_refused"),
         "unreachable:connection_refused"),
        (TeacherError("m", "retries_exhausted", cause="timeout"), None),
        (TeacherError("m", "retries_exhausted", cause="connection_dropped"), None),
        (TeacherError("m", "retries_exhausted", 429), None),
        (TeacherError("m", "retries_exhausted", 503), None),
    ],
)  # fmt: skip
def test_signature(error: TeacherError, expected: str | None) -> None:
    assert signature(error) == expected


def snapshot(failed: int, kinds: dict[str, int], ok: int = 0, **errors: str) -> dict[str, Any]:
    return {
        "counters": {"seeds": {"failed": failed, "accepted": ok}, COUNTER: kinds},
        "errors": [{"signature": k, "message": m} for k, m in errors.items()],
    }


def test_stops_when_the_first_seeds_all_fail_one_way() -> None:
    stop = FailureStop(4)
    assert stop.check(snapshot(3, {"not_found": 3})) is None
    why = stop.check(snapshot(4, {"not_found": 4}, not_found="model gone"))
    assert why is not None and "(not_found)" in why and "model gone" in why


@pytest.mark.parametrize(
    "snap",
    [
        snapshot(9, {"transient": 9}),  # an overloaded server is waited for
        snapshot(9, {"not_found": 5, "bad_request": 4}),  # not one cause
    ],
)
def test_keeps_going(snap: dict[str, Any]) -> None:
    assert FailureStop(4).check(snap) is None


def test_one_finished_seed_disarms_it() -> None:
    stop = FailureStop(4)
    assert stop.check(snapshot(1, {"not_found": 1}, ok=1)) is None
    assert stop.check(snapshot(50, {"not_found": 50}, ok=1)) is None
    assert FailureStop(0).check(snapshot(50, {"not_found": 50})) is None  # 0: never


def rejections(rejected: int, ok: int = 0, **dropped: int) -> dict[str, Any]:
    """A snapshot where ``rejected`` seeds gave no row; ``dropped``: ``stage__reason=N``."""
    groups: dict[str, dict[str, int]] = {"seeds": {"rejected": rejected, "accepted": ok}}
    for key, n in dropped.items():
        stage, reason = key.split("__")
        groups.setdefault(stage, {})[f"dropped:{reason}"] = n
    return {"counters": groups, "errors": []}


def test_stops_when_the_first_seeds_all_give_no_row() -> None:
    """A teacher that refuses (or ignores the format) fails no request: every seed is rejected.
    The stop names the most common reasons the items were dropped."""
    stop = FailureStop(4, empty_threshold=5)
    assert stop.check(rejections(4, one_step__missing_marker=4)) is None
    why = stop.check(rejections(5, one_step__missing_marker=5, execute__timeout=1))
    assert why is not None
    assert "the first 5 seeds gave no row" in why
    assert "one_step:missing_marker=5, execute:timeout=1" in why


def test_the_empty_stop_lists_three_reasons_and_counts_the_rest() -> None:
    why = FailureStop(0, empty_threshold=1).check(
        rejections(3, a__x=5, b__y=4, c__z=3, d__w=2, e__v=1)
    )
    assert why is not None and "a:x=5, b:y=4, c:z=3 and 2 more" in why


def test_one_accepted_seed_disarms_the_empty_stop() -> None:
    stop = FailureStop(4, empty_threshold=5)
    assert stop.check(rejections(3, ok=1, one_step__missing_marker=30)) is None
    assert stop.check(rejections(500, ok=1, one_step__missing_marker=5000)) is None
    assert stop.disarmed
    assert FailureStop(4, empty_threshold=0).check(rejections(500)) is None  # 0: never


def test_a_rejected_seed_still_disarms_the_failure_stop_only() -> None:
    """Failures after a seed that finished (rejected) are not one persistent cause; the empty
    stop stays armed until a seed is accepted."""
    stop = FailureStop(4, empty_threshold=50)
    snap = snapshot(9, {"not_found": 9})
    snap["counters"]["seeds"]["rejected"] = 1
    assert stop.check(snap) is None
    assert not stop.disarmed
