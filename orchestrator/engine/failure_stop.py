"""Stop a run whose first seeds all fail the same persistent way, or all give no row, instead
of grinding through every seed.

``signature(error)`` names a teacher failure that will repeat on every request, by kind, status
and cause (never by message text): ``not_found`` / ``bad_request`` / ``unprocessable`` /
``client_error:<status>`` (4xx the client does not retry), ``malformed_reply:<cause>`` (HTML,
empty or non-JSON 200 bodies), ``unreachable:<cause>`` (no HTTP answer after every attempt
because the connection was refused, the host does not resolve, the URL is unusable or TLS
failed). Timeouts, dropped connections and 429/5xx that used up their attempts are transient
(``None``): an overloaded server is waited for, not given up on.

The worker counts each failed seed under ``seed_failures/<signature or "transient">`` and sends
its message with the signature among its errors; the driver hands every metrics snapshot to
``FailureStop.check``, which returns why to stop when the first ``threshold`` finished seeds all
failed with one persistent signature and none was accepted or rejected. One finished seed
disarms that check for the rest of the run.

A teacher that answers but never usefully (refusals, junk, a model that ignores the output
format) fails no request: every seed is *rejected*, every item dropped. ``empty_threshold``
stops such a run once that many seeds were rejected before any was accepted, naming the most
common reasons items were dropped (the stages' ``dropped:<reason>`` counters). One accepted
seed disarms that check.

What it does NOT do: stop workers (the driver does, as for a rejected API key), or judge
failures or rejections after the first success: a run that worked and then fails seeds is
finished with those seeds marked failed (retried on the next run).
"""

from __future__ import annotations

from typing import Any

from orchestrator.teacher.errors import TeacherError
from orchestrator.telemetry.counters import dropped_by_reason

__all__ = ["COUNTER", "FailureStop", "signature"]

COUNTER = "seed_failures"  # counter group: failed seeds by signature
_PERSISTENT_KINDS = ("bad_request", "not_found", "unprocessable")
_PERSISTENT_CAUSES = ("connection_refused", "name_not_resolved", "invalid_url", "tls_error")


def signature(error: TeacherError) -> str | None:
    """The failure's signature when it will repeat on every request, else None."""
    if error.kind in _PERSISTENT_KINDS:
        return error.kind
    if error.kind == "client_error":
        return f"client_error:{error.status}"
    if error.kind == "malformed_reply":
        return f"malformed_reply:{error.cause or 'not_completion'}"
    if error.kind == "retries_exhausted" and error.cause in _PERSISTENT_CAUSES:
        return f"unreachable:{error.cause}"
    return None


class FailureStop:
    """Decides, from metrics snapshots, when the first seeds all failed the same way or all
    gave no row."""

    def __init__(self, threshold: int, empty_threshold: int = 0) -> None:
        self.threshold = threshold  # 0: never stop
        self.empty_threshold = empty_threshold  # 0: never stop
        self._failures_armed = threshold > 0
        self._empty_armed = empty_threshold > 0

    @property
    def disarmed(self) -> bool:
        return not (self._failures_armed or self._empty_armed)

    def check(self, snapshot: dict[str, Any]) -> str | None:
        """Why the run must stop, or None."""
        if self.disarmed:
            return None
        counters = snapshot.get("counters", {})
        seeds = counters.get("seeds", {})
        if seeds.get("accepted", 0):
            self._failures_armed = self._empty_armed = False
            return None
        rejected = int(seeds.get("rejected", 0))
        if rejected:
            self._failures_armed = False
        if self._empty_armed and rejected >= self.empty_threshold:
            return (
                f"the first {rejected} seeds gave no row (items dropped: "
                f"{_top_reasons(counters)}), so the rest were not sent; the dropped items and "
                "their reasons are in the output's rejected/"
            )
        if not self._failures_armed:
            return None
        failed = int(seeds.get("failed", 0))
        kinds = {k: v for k, v in counters.get(COUNTER, {}).items() if v}
        if failed < self.threshold or len(kinds) != 1:
            return None
        (key,) = kinds
        if key == "transient":
            return None
        last = next(
            (e["message"] for e in reversed(snapshot.get("errors", []))
             if e.get("signature") == key),
            None,
        )  # fmt: skip
        return (
            f"the first {failed} seeds all failed the same way ({key}), so the rest were not "
            f"sent" + (f"; last error: {last}" if last else "")
        )


def _top_reasons(counters: dict[str, dict[str, float]], shown: int = 3) -> str:
    """``stage:reason=N`` of the most common ``dropped:<reason>`` counters, most first."""
    dropped = {reason: int(n) for reason, n in dropped_by_reason(counters).items() if n}
    top = sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{reason}={n}" for reason, n in top[:shown])
    more = len(top) - shown
    return (text + (f" and {more} more" if more > 0 else "")) or "no reason counted"
