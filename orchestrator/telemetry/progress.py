"""Show run progress: a live ``rich`` panel on a terminal, plain log lines otherwise, or one
JSON event per line (``--json``); and the progress file a driver keeps for ``mathsynth watch``.

Input is a progress view (``orchestrator.telemetry.dashboard`` documents its keys). ``RateTracker``
turns successive views into rates (tokens/s, seeds/s, ETA, a tokens/s history for the
sparkline) using each view's own ``time``, so a view replayed from a file or a job's log gives
the same numbers. ``ProgressDisplay`` draws (the panel itself is ``dashboard.render``);
``ProgressFile`` writes the view to ``<out>/_mathsynth/progress.json`` at most every second,
through the output store (atomic on every backend). Nothing here holds counters or talks to
Ray.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from typing import Any, Literal, TextIO

from rich.console import Console
from rich.live import Live
from rich.panel import Panel

from orchestrator.telemetry.counters import Counters
from orchestrator.telemetry.dashboard import Rates, fmt_eta, render, seeds_done

WINDOW_S = 15.0
HISTORY_STEP_S = 5.0  # one sparkline bar per 5 s ...
HISTORY_LEN = 60  # ... over the last 5 minutes
PROGRESS_FILE = "_mathsynth/progress.json"
Mode = Literal["auto", "live", "plain", "json"]


class RateWindow:
    """Rate of a growing total over the last ``WINDOW_S`` seconds."""

    def __init__(self) -> None:
        self.points: deque[tuple[float, float]] = deque()

    def add(self, total: float, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self.points.append((now, total))
        while len(self.points) > 2 and now - self.points[0][0] > WINDOW_S:
            self.points.popleft()
        (t0, v0), (t1, v1) = self.points[0], self.points[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else 0.0


class RateTracker:
    def __init__(self) -> None:
        self.prompt, self.completion, self.seeds = RateWindow(), RateWindow(), RateWindow()
        self.history: deque[float] = deque(maxlen=HISTORY_LEN)
        self._last_sample = -float("inf")

    def update(self, view: dict[str, Any]) -> Rates:
        now = float(view.get("time") or time.time())
        counters = Counters(view.get("counters", {}))
        prompt = self.prompt.add(counters.get("teacher", "prompt_tokens"), now)
        completion = self.completion.add(counters.get("teacher", "completion_tokens"), now)
        done = sum(counters.group("seeds").values())
        per_s = self.seeds.add(done, now)
        left = view.get("total_seeds", 0) - seeds_done(view)
        eta = left / per_s if per_s > 0 else (0.0 if left <= 0 else None)
        if now - self._last_sample >= HISTORY_STEP_S:
            self._last_sample = now
            self.history.append(prompt + completion)
        return Rates(prompt, completion, per_s, eta, list(self.history))


def plain_line(view: dict[str, Any], rates: Rates) -> str:
    counters = Counters(view.get("counters", {}))
    gauges = view.get("gauges", {})
    cost = view.get("cost_usd")
    return (
        f"[progress] {view.get('state', 'running')} seeds {seeds_done(view)}/"
        f"{view.get('total_seeds', 0)} rows {int(counters.get('writer', 'rows'))}"
        f" requests {int(counters.get('teacher', 'requests'))}"
        f" in_flight {int(gauges.get('in_flight', 0))} waiting {int(gauges.get('waiting', 0))}"
        f" tokens/s {rates.prompt_tps + rates.completion_tps:.1f} ETA {fmt_eta(rates.eta_s)}"
        + (f" cost ${cost:.4f}" if cost is not None else "")
    )


class ProgressDisplay:
    """``with ProgressDisplay(console) as show: engine.run_job(..., on_progress=show.update)``.

    ``mode="auto"``: the live panel (redrawn at most every ``refresh_s``) when ``console`` is a
    terminal, else a plain line every ``log_every_s``. ``"json"``: one ``{"event": "progress", ...view}`` line per
    ``json_every_s`` on ``stream`` (stdout), and ``finish(summary)`` prints
    ``{"event": "summary", "summary": ...}``.
    """

    def __init__(
        self,
        console: Console | None = None,
        mode: Mode = "auto",
        log_every_s: float = 10.0,
        json_every_s: float = 1.0,
        stream: TextIO | None = None,
        refresh_s: float = 1.0,
    ) -> None:
        self.console = console or Console(stderr=True)
        if mode == "auto":
            mode = "live" if self.console.is_terminal else "plain"
        self.mode = mode
        self.stream = stream or sys.stdout
        self.live: Live | None = None
        self.rates = RateTracker()
        self.every_s = {"json": json_every_s, "live": refresh_s}.get(mode, log_every_s)
        self._last_out = -float("inf")
        self.last_view: dict[str, Any] | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.mode == "live":
            # Redrawn only from ``update``, at most every ``refresh_s``: a full panel costs
            # tens of ms of the driver's CPU, which the workers on its node need.
            self.live = Live(console=self.console, auto_refresh=False, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
            self.live = None

    def update(self, view: dict[str, Any]) -> None:
        view = {"time": time.time(), **view}
        rates = self.rates.update(view)
        self.last_view = view
        final = view.get("state", "running") != "running"
        if not final and time.monotonic() - self._last_out < self.every_s:
            return
        self._last_out = time.monotonic()
        if self.live is not None:
            self.live.update(Panel(render(view, rates), title=_title(view)), refresh=True)
        elif self.mode == "json":
            self.emit({"event": "progress", **view})
        else:
            self.console.print(plain_line(view, rates), highlight=False, markup=False)

    def emit(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event, default=str) + "\n")
        self.stream.flush()

    def finish(self, summary: dict[str, Any]) -> None:
        if self.mode == "json":
            self.emit({"event": "summary", "summary": summary})


def _title(view: dict[str, Any]) -> str:
    job = view.get("job") or {}
    name = " ".join(str(job[k]) for k in ("pipeline", "out") if job.get(k))
    return f"mathsynth {name} [{view.get('state', 'running')}]".replace("  ", " ")


class ProgressFile:
    """Keeps ``<out>/_mathsynth/progress.json`` current (at most every ``every_s``; always for
    a final state), so ``mathsynth watch OUT_DIR`` can follow a run from another process."""

    def __init__(self, store: Any, every_s: float = 1.0) -> None:
        self.store = store
        self.every_s = every_s
        self._last = -float("inf")

    def update(self, view: dict[str, Any]) -> None:
        final = view.get("state", "running") != "running"
        if final or time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            self.store.write_json(PROGRESS_FILE, {"time": time.time(), **view})
