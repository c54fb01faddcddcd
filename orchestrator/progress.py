"""Render run progress: a ``rich`` live panel on a terminal, plain log lines otherwise.

Input is the engine's progress view (the metrics hub's snapshot plus seed totals); this module
computes rates over a sliding window and draws. It holds no counters of its own beyond that
window, and it never talks to Ray.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orchestrator.counters import Counters

WINDOW_S = 15.0


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


def funnel_rows(counters: Counters) -> list[tuple[str, float, float, dict[str, float]]]:
    """(stage, seen, kept-or-produced, drops by reason) for each stage group, in first-seen
    order; teacher/seeds/writer groups are not stages."""
    rows = []
    for group, names in counters.as_dict().items():
        if group in ("teacher", "seeds", "writer"):
            continue
        drops = {
            n.removeprefix("dropped:"): v for n, v in names.items() if n.startswith("dropped:")
        }
        out = names.get("kept", names.get("produced", 0))
        rows.append((group, names.get("seen", 0), out, drops))
    return rows


def render(view: dict[str, Any], tokens_per_s: float, eta_s: float | None) -> Group:
    counters = Counters(view.get("counters", {}))
    seeds = counters.group("seeds")
    done = sum(seeds.values()) + view.get("skipped", 0)
    total = view.get("total_seeds", 0)
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]seeds[/] {int(done)}/{total}",
        f"accepted {int(seeds.get('accepted', 0))}",
        f"rejected {int(seeds.get('rejected', 0))}",
        f"failed {int(seeds.get('failed', 0))}",
        f"skipped {view.get('skipped', 0)}",
    )
    head.add_row(
        f"[bold]rows[/] {int(counters.get('writer', 'rows'))}",
        f"in flight {int(view.get('gauges', {}).get('in_flight', 0))}",
        f"requests {int(counters.get('teacher', 'requests'))}",
        f"tokens/s {tokens_per_s:,.1f}",
        f"ETA {_fmt_eta(eta_s)}",
    )
    if view.get("cost_usd") is not None:
        projected = view.get("projected_cost_usd")
        head.add_row(
            f"[bold]cost[/] ${view['cost_usd']:.4f}",
            f"projected ${projected:.4f}" if projected is not None else "projected -",
        )
    funnel = Table(title="filter funnel", expand=False)
    for col in ("stage", "seen", "kept", "accept", "dropped by reason"):
        funnel.add_column(col)
    for stage, seen, kept, drops in funnel_rows(counters):
        rate = f"{kept / seen:.0%}" if seen and stage != "one_step" else "-"
        reasons = ", ".join(f"{k} {int(v)}" for k, v in sorted(drops.items()))
        funnel.add_row(stage, str(int(seen)), str(int(kept)), rate, reasons)
    errors = {k: v for k, v in counters.group("teacher").items() if k.startswith("error:")}
    parts: list[Any] = [head, funnel]
    if errors:
        latest = (view.get("errors") or [""])[-1]
        parts.append(Text(f"errors: {errors}  latest: {latest[:120]}", style="red"))
    return Group(*parts)


def _fmt_eta(eta_s: float | None) -> str:
    if eta_s is None:
        return "-"
    minutes, seconds = divmod(int(eta_s), 60)
    return f"{minutes}m{seconds:02d}s"


class ProgressDisplay:
    """``with ProgressDisplay() as show: engine.run_job(..., on_progress=show.update)``."""

    def __init__(self, console: Console | None = None, log_every_s: float = 10.0) -> None:
        self.console = console or Console(stderr=True)
        self.live: Live | None = None
        self.tokens = RateWindow()
        self.seeds = RateWindow()
        self.log_every_s = log_every_s
        self._last_log = 0.0

    def __enter__(self) -> ProgressDisplay:
        if self.console.is_terminal:
            self.live = Live(console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def update(self, view: dict[str, Any]) -> None:
        counters = Counters(view.get("counters", {}))
        tps = self.tokens.add(counters.get("teacher", "completion_tokens"))
        done = sum(counters.group("seeds").values())
        rate = self.seeds.add(done)
        left = view.get("total_seeds", 0) - view.get("skipped", 0) - done
        eta = left / rate if rate > 0 else None
        if self.live is not None:
            self.live.update(Panel(render(view, tps, eta), title="mathsynth"))
        elif time.monotonic() - self._last_log >= self.log_every_s:
            self._last_log = time.monotonic()
            self.console.print(
                f"[progress] seeds {int(done) + view.get('skipped', 0)}/{view.get('total_seeds')}"
                f" rows {int(counters.get('writer', 'rows'))}"
                f" requests {int(counters.get('teacher', 'requests'))}"
                f" tokens/s {tps:.1f}",
                highlight=False,
                markup=False,
            )
