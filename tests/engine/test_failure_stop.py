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
