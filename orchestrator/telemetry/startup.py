"""What a run is doing before its first progress view: the start-up steps with their times.

Starting Ray, the teacher, the job's actors, loading seeds and earlier rows, building the
decontamination index can take tens of seconds; the steps are reported as they begin
(``StartupFn``: ``step("starting Ray")``), and a step ends when the next one begins or the
first progress view arrives. ``StartupLog`` keeps them and draws them: ``StartupView`` for the
live display (each finished step with its duration, the current one with a spinner and its
running time, redrawn by a ``rich.live.Live`` that refreshes itself while the driver blocks)
and ``line`` for one plain line per step. It does not time anything it is not told about and
does not print (``orchestrator.telemetry.progress`` does).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console, ConsoleOptions, RenderResult
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from orchestrator.telemetry.eta import fmt_duration

StartupFn = Callable[[str], None]


def no_startup(step: str) -> None:
    """A ``StartupFn`` that reports nowhere."""


class StartupLog:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.began = clock()
        self.steps: list[tuple[str, float]] = []  # (step, when it began)

    def begin(self, step: str) -> float:
        """Start ``step`` (ending the previous one); seconds since start-up began."""
        now = self.clock()
        self.steps.append((step, now))
        return now - self.began

    def durations(self, until: float | None = None) -> list[tuple[str, float]]:
        """(step, seconds) of every step so far; the last one runs until ``until`` (now)."""
        end = self.clock() if until is None else until
        starts = [t for _, t in self.steps] + [end]
        return [(name, starts[i + 1] - t) for i, (name, t) in enumerate(self.steps)]

    def elapsed(self) -> float:
        return self.clock() - self.began

    def summary(self) -> str:
        """``[start] ready after 12.3s (starting Ray 8.9s, starting the job's actors 1.5s)``:
        the steps that took a second or more."""
        slow = ", ".join(f"{name} {s:.1f}s" for name, s in self.durations() if s >= 1)
        return f"[start] ready after {self.elapsed():.1f}s" + (f" ({slow})" if slow else "")


def line(step: str, elapsed_s: float) -> str:
    """The plain line of one step: ``[start +8.9s] starting the job's actors``."""
    return f"[start +{elapsed_s:.1f}s] {step}"


class StartupView:
    """The live drawing of a ``StartupLog`` (recomputed at each refresh)."""

    def __init__(self, log: StartupLog) -> None:
        self.log = log
        self.spinner = Spinner("dots")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = Table.grid(padding=(0, 1))
        table.add_column(width=2, no_wrap=True)
        table.add_column(no_wrap=True, overflow="ellipsis")
        table.add_column(no_wrap=True, justify="right")
        steps = self.log.durations()
        for i, (name, seconds) in enumerate(steps):
            current = i == len(steps) - 1
            mark = self.spinner if current else Text("✓", style="green")
            table.add_row(mark, Text(name, style="" if current else "dim"),
                          Text(fmt_duration(seconds) if seconds >= 1 else f"{seconds:.1f}s"))  # fmt: skip
        heading = Text(f"starting up … {self.log.elapsed():.0f}s", style="bold")
        yield heading
        yield table
