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
rows; actors, replicas to one line each, then gone; a table too wide to show whole is one line
from the start), and on a wide terminal the actor and replica tables sit side by side. This module keeps no state, reads no files and never talks to
Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
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
        lines = fit(sections(self.view, self.rates, inner.max_width), console, inner, height - 2)
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
) -> list[list[Segment]]:
    """The lines of the sections' forms that fit ``height`` (see ``SHRINK``); an actor or
    replica table too wide to show whole is its one-line form from the start. Each form is
    rendered once."""
    forms: dict[str, RenderableType | None] = {s.name: s.full for s in parts}
    by_name = {s.name: s for s in parts}
    for name in ("actors", "replicas"):
        section = by_name.get(name)
        if section is not None and section.compact is not None:
            natural = Measurement.get(console, options.update_width(10_000), section.full)
            if natural.maximum > options.max_width:
                forms[name] = section.compact
    pair = _side_by_side(forms, options.max_width)
    rendered: dict[int, tuple[RenderableType, list[list[Segment]]]] = {}  # (kept alive: ids)

    def lines(renderable: RenderableType) -> list[list[Segment]]:
        if id(renderable) not in rendered:
            drawn = console.render_lines(renderable, options, pad=False)
            rendered[id(renderable)] = (renderable, drawn)
        return rendered[id(renderable)][1]

    def arranged() -> list[RenderableType]:
        chosen = [r for r in forms.values() if r is not None]
        if pair is not None and pair[0] is forms.get("actors") and pair[1] is forms.get("replicas"):
            return [pair[2] if r is pair[1] else r for r in chosen if r is not pair[0]]
        return chosen

    steps = iter(SHRINK)
    while sum(len(lines(r)) for r in arranged()) > height:
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
    return [line for r in arranged() for line in lines(r)]


def _side_by_side(
    forms: dict[str, RenderableType | None], width: int
) -> tuple[RenderableType, RenderableType, Table] | None:
    """(actors, replicas, both in one grid) when both are full tables and the panel is wide."""
    actors, replicas = forms.get("actors"), forms.get("replicas")
    if width < SIDE_BY_SIDE_WIDTH or not isinstance(actors, Table):
        return None
    if not isinstance(replicas, Table):
        return None
    grid = Table.grid(padding=(0, 2))
    grid.add_row(actors, replicas)
    return actors, replicas, grid


def title(view: dict[str, Any]) -> str:
    job = view.get("job") or {}
    name = " ".join(str(job[k]) for k in ("pipeline", "out") if job.get(k))
    return f"mathsynth {name} [{view.get('state', 'running')}]".replace("  ", " ")


def render(view: dict[str, Any], rates: Rates) -> Dashboard:
    return Dashboard(view, rates)
