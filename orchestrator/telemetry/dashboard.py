"""The dashboard panel: one ``rich`` renderable drawn from a progress view and its rates,
fitted to the terminal it is drawn on.

A *progress view* is the JSON-able dict the engine builds every poll (``job_report.progress_view``)
and writes to ``<out>/_mathsynth/progress.json`` / prints with ``--json``:

    state        running | finished | failed | interrupted
    time         epoch seconds of the view (rates are computed on it, so replays render right)
    counters     {group: {name: n}} (orchestrator.telemetry.counters): seeds, teacher, stages, writer
    gauges       summed over workers: {"in_flight", "waiting", "pending_commit" (rows accepted,
                 not yet committed), "sandbox_queued", "sandbox_running" (programs),
                 "sandbox_slots", "sandbox_busy_s" (slot-seconds so far), "replicas":
                 {url: in_flight}}
    queued       {"chunks": n, "seeds": n, "outstanding_chunks": n} held by the driver
    actors       [{"name", "state", "node", "last_push_s", "in_flight", "source", "restarts"}]
    nodes        [{"node", "state", "actors"}]
    replica_states  [{"index", "phase", "url", "restarts", "last_failure", ...}] teacher
                 replicas as their supervisor sees them (kind vllm only)
    errors       [{"kind", "message", "worker", "time"}] latest few, oldest first
    recent       [{"question", "answer"}] a few recently accepted rows
    total_seeds, skipped, cost_usd, projected_cost_usd, elapsed_s, fatal

``render`` returns a ``Dashboard``; ``Rates`` carries what only a watcher over time knows
(tokens/s, ETA, sandbox busy share, the sparkline history), computed by
``orchestrator.telemetry.progress``. At any size every line fits the width (cut, never wrapped)
and the panel fits the height: low-priority sections are made compact, then dropped (recent
rows; actors, replicas to one line each, then gone), and on a wide terminal the actor and
replica tables sit side by side. This module keeps no state, reads no files and never talks to
Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from orchestrator.telemetry.eta import fmt_eta
from orchestrator.telemetry.panel_sections import Section, sections, seeds_done, sparkline

__all__ = ["Dashboard", "Rates", "fmt_eta", "render", "seeds_done", "sparkline"]

# How to shrink, in order, until the panel fits: (section, "compact" | "drop").
SHRINK = [("recent", "drop"), ("actors", "compact"), ("replicas", "compact"),
          ("errors", "compact"), ("funnel", "compact"), ("actors", "drop"),
          ("replicas", "drop")]  # fmt: skip
SIDE_BY_SIDE_WIDTH = 140  # actors and replicas side by side from this inner width on


@dataclass
class Rates:
    prompt_tps: float = 0.0
    completion_tps: float = 0.0
    seeds_per_s: float = 0.0
    eta_s: float | None = None
    history: list[float] = field(default_factory=list)  # tokens/s, oldest first
    sandbox_busy: float | None = None  # share of sandbox slot time in use (0..1)
    sandbox_cpu_s: float = 0.0  # seconds of program run time per second


class Dashboard:
    """The panel for one view, laid out for the console's width and height when drawn."""

    def __init__(self, view: dict[str, Any], rates: Rates) -> None:
        self.view = view
        self.rates = rates

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height or options.max_height
        inner = options.update(width=max(1, width - 4), height=None)  # border + padding
        parts = fit(sections(self.view, self.rates, inner.max_width), console, inner, height - 2)
        lines = console.render_lines(Group(*parts), inner, pad=False)
        if len(lines) > height - 2:  # still too tall (a long funnel in a tiny terminal): cut it
            more = len(lines) - (height - 3)
            note = Text(f"… {more} more lines: enlarge the terminal", style="dim", no_wrap=True)
            note.truncate(inner.max_width, overflow="ellipsis")
            lines = lines[: max(0, height - 3)] + console.render_lines(note, inner, pad=False)
        panel = Panel(_Lines(lines), title=Text(title(self.view)), title_align="left")
        yield from console.render(panel, options.update(width=width, height=None))


class _Lines:
    """Lines already rendered, drawn as they are."""

    def __init__(self, lines: list[list[Segment]]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines:
            yield from line
            yield Segment.line()


def fit(
    parts: list[Section], console: Console, options: ConsoleOptions, height: int
) -> list[RenderableType]:
    """The sections' forms that fit ``height`` lines (see ``SHRINK``)."""
    forms: dict[str, RenderableType | None] = {s.name: s.full for s in parts}
    by_name = {s.name: s for s in parts}
    sizes: dict[int, int] = {}

    def lines(renderable: RenderableType | None) -> int:
        if renderable is None:
            return 0
        if id(renderable) not in sizes:
            sizes[id(renderable)] = len(console.render_lines(renderable, options, pad=False))
        return sizes[id(renderable)]

    steps = iter(SHRINK)
    while sum(lines(r) for r in _arranged(forms, options.max_width)) > height:
        step = next(steps, None)
        if step is None:
            break
        name, how = step
        if name not in by_name:
            continue
        if how == "drop" and by_name[name].droppable:
            forms[name] = None
        elif how == "compact" and by_name[name].compact is not None and forms[name] is not None:
            forms[name] = by_name[name].compact
    return _arranged(forms, options.max_width)


def _arranged(forms: dict[str, RenderableType | None], width: int) -> list[RenderableType]:
    """The chosen forms in order; full actor and replica tables side by side when wide."""
    chosen = [r for r in forms.values() if r is not None]
    actors, replicas = forms.get("actors"), forms.get("replicas")
    if width >= SIDE_BY_SIDE_WIDTH and isinstance(actors, Table) and isinstance(replicas, Table):
        pair = Table.grid(padding=(0, 2))
        pair.add_row(actors, replicas)
        chosen = [pair if r is replicas else r for r in chosen if r is not actors]
    return chosen


def title(view: dict[str, Any]) -> str:
    job = view.get("job") or {}
    name = " ".join(str(job[k]) for k in ("pipeline", "out") if job.get(k))
    return f"mathsynth {name} [{view.get('state', 'running')}]".replace("  ", " ")


def render(view: dict[str, Any], rates: Rates) -> Dashboard:
    return Dashboard(view, rates)
