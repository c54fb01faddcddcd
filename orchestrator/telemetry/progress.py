"""Show run progress: a live ``rich`` panel on a terminal, plain log lines otherwise, or one
JSON event per line (``--json``); and the progress file a driver keeps for ``mathsynth watch``.

Input is a progress view (``orchestrator.telemetry.dashboard`` documents its keys). ``RateTracker``
turns successive views into rates (tokens/s over ``WINDOW_S``, a smoothed ETA from
``orchestrator.telemetry.eta``, sandbox busy share, a tokens/s history for the sparkline) using
each view's own ``time``, so a view replayed from a file or a job's log gives the same numbers.
``ProgressDisplay`` draws (the panel is ``dashboard.render``, the same for ``run`` and
``watch``; start-up steps before the first view, ``orchestrator.telemetry.startup``); plain
lines carry an ISO-8601 timestamp and are never wrapped. ``ProgressFile`` writes the view to
``<out>/_mathsynth/progress.json`` through the output store (atomic on every backend), keys in
the view's order. Nothing here holds counters or talks to Ray.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sys
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Literal, TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from orchestrator.telemetry.counters import Counters
from orchestrator.telemetry.dashboard import Rates, render, seeds_done
from orchestrator.telemetry.eta import EtaEstimator, fmt_eta
from orchestrator.telemetry.events import dumps, progress_event, startup_event, summary_event
from orchestrator.telemetry.startup import StartupLog, StartupView, line

WINDOW_S = 15.0
HISTORY_STEP_S = 5.0  # one sparkline bar per 5 s ...
HISTORY_LEN = 60  # ... over the last 5 minutes
PROGRESS_FILE = "_mathsynth/progress.json"
SLACK = 0.8  # a throttle lets through what comes at 80% of its interval (callers' jitter)
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
        return max(0.0, (v1 - v0) / (t1 - t0)) if t1 > t0 else 0.0


class RateTracker:
    def __init__(self) -> None:
        self.prompt, self.completion, self.seeds = RateWindow(), RateWindow(), RateWindow()
        self.busy, self.program = RateWindow(), RateWindow()
        self.eta = EtaEstimator()
        self.history: deque[float] = deque(maxlen=HISTORY_LEN)
        self._last_sample = -float("inf")

    def update(self, view: dict[str, Any]) -> Rates:
        now = float(view.get("time") or time.time())
        counters = Counters(view.get("counters", {}))
        gauges = view.get("gauges", {})
        prompt = self.prompt.add(counters.get("teacher", "prompt_tokens"), now)
        completion = self.completion.add(counters.get("teacher", "completion_tokens"), now)
        done = sum(counters.group("seeds").values())
        per_s = self.seeds.add(done, now)
        eta = self.eta.update(now, seeds_done(view), view.get("total_seeds", 0) - seeds_done(view))
        slots = gauges.get("sandbox_slots") or 0
        busy = self.busy.add(gauges.get("sandbox_busy_s", 0.0), now) / slots if slots else None
        cpu = sum(names.get("cpu_seconds", 0) for names in counters.as_dict().values())
        if now - self._last_sample >= HISTORY_STEP_S:
            self._last_sample = now
            self.history.append(prompt + completion)
        return Rates(prompt, completion, per_s, eta, list(self.history),
                     None if busy is None else min(1.0, busy), self.program.add(cpu, now))  # fmt: skip


class Throttle:
    """At most one pass per ``every_s`` (with ``SLACK``), always for a final state."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.last = -float("inf")

    def due(self, final: bool = False) -> bool:
        now = time.monotonic()
        if final or now - self.last >= self.every_s * SLACK:
            self.last = now
            return True
        return False


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="seconds")


def plain_line(view: dict[str, Any], rates: Rates) -> str:
    counters = Counters(view.get("counters", {}))
    gauges = view.get("gauges", {})
    cost = view.get("cost_usd")
    sandbox = (
        f" sandbox running {int(gauges.get('sandbox_running', 0))} queued "
        f"{int(gauges.get('sandbox_queued', 0))}"
        + (f" busy {rates.sandbox_busy:.0%}" if rates.sandbox_busy is not None else "")
        if gauges.get("sandbox_slots")
        else ""
    )
    return (
        f"[progress] {view.get('state', 'running')} seeds {seeds_done(view)}/{view.get('total_seeds', 0)}"
        f" written {int(counters.get('writer', 'rows'))}"
        f" pending_commit {int(gauges.get('pending_commit', 0))}"
        f" requests {int(counters.get('teacher', 'requests'))}"
        f" in_flight {int(gauges.get('in_flight', 0))} waiting {int(gauges.get('waiting', 0))}"
        f"{sandbox} tokens/s {rates.prompt_tps + rates.completion_tps:.1f}"
        f" ETA {fmt_eta(rates.eta_s)}" + (f" cost ${cost:.4f}" if cost is not None else "")
    )


class ProgressDisplay:
    """``with ProgressDisplay(console) as show: engine.run_job(..., on_progress=show.update,
    on_startup=show.step)``.

    ``mode="auto"``: the live panel (redrawn at most every ``refresh_s``) when ``console`` is a
    terminal, else a plain line every ``log_every_s``. ``"json"``: one progress event per
    ``json_every_s`` on ``stream`` (stdout), and ``finish(summary)`` prints the summary event
    (``orchestrator.telemetry.events``). ``step(name)`` reports a start-up step: a live list
    with running times, a ``[start]`` line, or a startup event, until the first view arrives.
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
        every_s = {"json": json_every_s, "live": refresh_s}.get(mode, log_every_s)
        self.throttle = Throttle(every_s)
        self.last_view: dict[str, Any] | None = None
        self.startup: StartupLog | None = None

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
            self.live = None
        if exc_type is not None and self.last_view is None and self.startup is not None:
            # the (transient) start-up list is gone: say where it stopped
            step = self.startup.steps[-1][0] if self.startup.steps else "?"
            if self.mode != "json":
                self.note(f"[start] stopped during {step} after {self.startup.elapsed():.1f}s")

    def step(self, name: str) -> None:
        """A start-up step begins (the previous one ends)."""
        if self.last_view is not None:
            return  # running already: start-up is over
        if self.startup is None:
            self.startup = StartupLog()
        elapsed = self.startup.begin(name)
        if self.mode == "json":
            self.emit(startup_event(name, elapsed))
        elif self.mode == "live" and self.live is None:
            # refreshes itself: the driver blocks in each step
            self.live = Live(StartupView(self.startup), console=self.console,
                             refresh_per_second=4, transient=True)  # fmt: skip
            self.live.__enter__()
        elif self.mode == "plain":
            self.note(line(name, elapsed))

    def update(self, view: dict[str, Any]) -> None:
        view = {"time": time.time(), **view}
        rates = self.rates.update(view)
        first = self.last_view is None
        self.last_view = view
        if first:
            self._end_startup()
        if not self.throttle.due(final=first or view.get("state", "running") != "running"):
            return
        if self.mode == "live":
            if self.live is None:
                # Redrawn only from ``update``: a full panel costs tens of ms of the driver's
                # CPU, which the workers on its node need.
                self.live = Live(console=self.console, auto_refresh=False, transient=False)
                self.live.__enter__()
            self.live.update(render(view, rates), refresh=True)
        elif self.mode == "json":
            self.emit(progress_event(view))
        else:
            self.note(plain_line(view, rates), view["time"])

    def _end_startup(self) -> None:
        if self.startup is None:
            return
        if self.live is not None:  # the start-up list gives way to the panel
            self.live.__exit__(None, None, None)
            self.live = None
        if self.mode != "json":
            self.note(self.startup.summary())

    def note(self, text: str, when: float | None = None) -> None:
        """One line, never wrapped: in plain mode after an ISO timestamp (``when``: now);
        whole where the output is not a terminal, cut to its width on one."""
        if self.mode == "plain":
            text = f"{iso(time.time() if when is None else float(when))} {text}"
        if self.console.is_terminal:
            self.console.print(Text(text, no_wrap=True, overflow="ellipsis"), highlight=False)
        else:
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        """A warning the run goes on after: a line like every other one (timestamped in plain
        mode), on stderr beside ``--json``'s event stream."""
        if self.mode == "json":
            print(f"warning: {text}", file=sys.stderr, flush=True)
        else:
            self.note(f"[warning] {text}")

    @contextlib.contextmanager
    def showing_warnings(self, *loggers: str) -> Iterator[None]:
        """Route WARNING-and-above records of ``loggers`` to ``warn`` while inside."""
        handler = _WarningHandler(self)
        targets = [logging.getLogger(name) for name in loggers]
        for logger in targets:
            logger.addHandler(handler)
        try:
            yield
        finally:
            for logger in targets:
                logger.removeHandler(handler)

    def emit(self, event: dict[str, Any]) -> None:
        self.stream.write(dumps(event) + "\n")
        self.stream.flush()

    def finish(self, summary: dict[str, Any]) -> None:
        if self.mode == "json":
            self.emit(summary_event(summary))


class _WarningHandler(logging.Handler):
    def __init__(self, display: ProgressDisplay) -> None:
        super().__init__(logging.WARNING)
        self.display = display

    def emit(self, record: logging.LogRecord) -> None:
        self.display.warn(record.getMessage())


class ProgressFile:
    """Keeps ``<out>/_mathsynth/progress.json`` current (at most every ``every_s``: by default
    every poll of the driver; always for a final state), so ``mathsynth watch OUT_DIR`` can
    follow a run from another process with no more delay than its own poll."""

    def __init__(self, store: Any, every_s: float = 0.5) -> None:
        self.store = store
        self.throttle = Throttle(every_s)

    def update(self, view: dict[str, Any]) -> None:
        if self.throttle.due(final=view.get("state", "running") != "running"):
            text = json.dumps({"time": time.time(), **view}, default=str)  # not sort_keys
            self.store.write_text(PROGRESS_FILE, text + "\n")
