"""Stop a run whose first seeds all fail the same persistent way, instead of grinding through
every seed.

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
disarms it for the rest of the run.

What it does NOT do: stop workers (the driver does, as for a rejected API key), or judge
failures after the first success: a run that worked and then fails seeds is finished with
those seeds marked failed (retried on the next run).
"""

from __future__ import annotations

from typing import Any

from orchestrator.teacher.errors import TeacherError

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
    """Decides, from metrics snapshots, when the first seeds all failed the same way."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold  # 0: never stop
        self.disarmed = threshold <= 0

    def check(self, snapshot: dict[str, Any]) -> str | None:
        """Why the run must stop, or None."""
        if self.disarmed:
            return None
        counters = snapshot.get("counters", {})
        seeds = counters.get("seeds", {})
        if seeds.get("accepted", 0) or seeds.get("rejected", 0):
            self.disarmed = True
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
