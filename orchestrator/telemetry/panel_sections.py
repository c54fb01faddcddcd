"""The sections of the dashboard panel, each drawn in full and (where it has one) compact.

``sections(view, rates, width)`` returns them in priority order: the headline (seeds, ETA,
rows written and pending commit, requests, sandbox, tokens, cost), errors, the filter funnel,
teacher replicas, nodes and actors, recent rows. ``orchestrator.telemetry.dashboard`` picks
which form of each fits the terminal. Every line here is drawn unwrapped (``no_wrap``, cut with
an ellipsis), so a section's height does not depend on the terminal's width except where a
section lays itself out for it (the headline flows its items over as many lines as it needs).
It reads only the view (documented in ``dashboard``) and keeps no state.
"""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from orchestrator.telemetry.counters import Counters
from orchestrator.telemetry.eta import fmt_duration, fmt_eta
from orchestrator.telemetry.funnel import funnel_rows, written

if TYPE_CHECKING:
    from orchestrator.telemetry.dashboard import Rates

SPARK = "▁▂▃▄▅▆▇█"
GROUP_SEP = "  │  "


@dataclass
class Section:
    name: str
    full: RenderableType
    compact: RenderableType | None = None  # None: has no smaller form
    droppable: bool = True


def sparkline(values: list[float]) -> str:
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1)))] for v in values)


def seeds_done(view: dict[str, Any]) -> int:
    """Seeds finished so far, including those a previous run finished (skipped)."""
    return int(sum(view.get("counters", {}).get("seeds", {}).values())) + int(
        view.get("skipped", 0)
    )


def _item(label: str, value: Any) -> Text:
    """``label value`` with the value in bold."""
    text = Text(f"{label} ", no_wrap=True, overflow="ellipsis")
    text.append(str(value), style="bold")
    return text


def _cell(text: str) -> Text:
    """A table cell that stays one line (cut with an ellipsis) in a column rich may narrow."""
    return Text(text, no_wrap=True, overflow="ellipsis")


def flow(groups: list[list[Text]], width: int) -> list[Text]:
    """Lay out groups of items over lines of at most ``width`` cells: whole groups side by side
    (``│`` between) while they fit, a group's items over several lines when it alone does not."""
    lines: list[Text] = []
    line = Text(no_wrap=True, overflow="ellipsis")
    for group in filter(None, groups):
        joined = Text("  ").join(group)
        if line and line.cell_len + len(GROUP_SEP) + joined.cell_len <= width:
            line.append(GROUP_SEP, style="dim")
            line.append_text(joined)
            continue
        if line:
            lines.append(line)
        line = Text(no_wrap=True, overflow="ellipsis")
        for item in group:
            if line and line.cell_len + 2 + item.cell_len > width:
                lines.append(line)
                line = Text(no_wrap=True, overflow="ellipsis")
            elif line:
                line.append("  ")
            line.append_text(item)
    if line:
        lines.append(line)
    for text in lines:
        text.truncate(width, overflow="ellipsis")
    return lines


def headline(view: dict[str, Any], rates: Rates, width: int) -> Group:
    counters = Counters(view.get("counters", {}))
    seeds, gauges, queued = counters.group("seeds"), view.get("gauges", {}), view.get("queued", {})
    rows = written(counters, gauges)
    total = int(view.get("total_seeds", 0))
    done = seeds_done(view)
    progress = [
        _item("seeds", f"{done}/{total}" + (f" ({done / total:.0%})" if total else "")),
        _item("ETA", fmt_eta(rates.eta_s)),
        _item("accepted", int(seeds.get("accepted", 0))),
        _item("rejected", int(seeds.get("rejected", 0))),
        _item("failed", int(seeds.get("failed", 0))),
        _item("skipped", int(view.get("skipped", 0))),
        _item("elapsed", fmt_duration(view.get("elapsed_s"))),
    ]
    output = [_item("written", rows.committed), _item("pending commit", rows.pending)]
    teacher = [
        _item("requests", int(counters.get("teacher", "requests"))),
        _item("in flight", int(gauges.get("in_flight", 0))),
        _item("waiting for a slot", int(gauges.get("waiting", 0))),
        _item("queued seeds", int(queued.get("seeds", 0))),
        _item("queued chunks", int(queued.get("chunks", 0))),
    ]
    sandbox = []
    if gauges.get("sandbox_slots"):
        busy = "-" if rates.sandbox_busy is None else f"{rates.sandbox_busy:.0%}"
        sandbox = [
            _item("sandbox running", int(gauges.get("sandbox_running", 0))),
            _item("queued", int(gauges.get("sandbox_queued", 0))),
            _item("busy", f"{busy} of {int(gauges['sandbox_slots'])} slots"),
            _item("program time", f"{rates.sandbox_cpu_s:.1f} s/s"),
        ]
    spark = sparkline(rates.history[-max(8, width // 4) :])
    tokens = [
        _item("tokens/s", f"prompt {rates.prompt_tps:,.1f}"),
        _item("completion", f"{rates.completion_tps:,.1f}"),
        *([Text(spark, no_wrap=True)] if spark else []),
        _item("prompt tokens", int(counters.get("teacher", "prompt_tokens"))),
        _item("completion tokens", int(counters.get("teacher", "completion_tokens"))),
    ]
    cost = []
    if view.get("cost_usd") is not None:
        projected = view.get("projected_cost_usd")
        cost = [
            _item("cost", f"${view['cost_usd']:.4f}"),
            _item("projected", f"${projected:.4f}" if projected is not None else "-"),
        ]
    return Group(*flow([progress, output, teacher, sandbox, tokens, cost], width))


def funnel(view: dict[str, Any], compact: bool) -> Table:
    counters = Counters(view.get("counters", {}))
    table = Table(
        title=None if compact else "filter funnel", title_justify="left",
        box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD, show_edge=not compact,
        pad_edge=not compact,
    )  # fmt: skip
    rows = funnel_rows(counters)
    widest = max([len(str(n)) for r in rows for n in (r.seen, r.out)] + [3])
    # Numbers keep their width; when the table is too wide, rich narrows the (wrappable)
    # text columns, whose cells are single lines cut with an ellipsis.
    table.add_column("stage", max_width=24)
    for col in ("in", "out"):
        table.add_column(col, no_wrap=True, justify="right", width=widest)
    table.add_column("accept", no_wrap=True, justify="right", width=6)
    table.add_column("rejected by reason")
    for row in rows:
        table.add_row(_cell(row.stage), str(row.seen), str(row.out), row.rate,
                      _cell(row.reasons()))  # fmt: skip
    done = written(counters, view.get("gauges", {}))
    pending = f"pending commit {done.pending}" if done.pending else ""
    table.add_row("written", "", str(done.committed), "", _cell(pending), style="bold")
    return table


def errors(view: dict[str, Any], compact: bool) -> Text | None:
    teacher = Counters(view.get("counters", {})).group("teacher")
    counts = {k.removeprefix("error:"): v for k, v in teacher.items() if k.startswith("error:")}
    latest: dict[str, str] = {}
    for err in view.get("errors") or []:
        latest[err.get("kind", "?")] = " ".join(str(err.get("message", "")).split())
        counts.setdefault(err.get("kind", "?"), 0)
    if not counts and not view.get("fatal"):
        return None
    fatal = " ".join(str(view.get("fatal") or "").split())
    if compact:
        kinds = ", ".join(f"{kind} x{int(n)}" for kind, n in sorted(counts.items()))
        text = Text("errors ", style="bold red", no_wrap=True, overflow="ellipsis")
        text.append(kinds, style="red")
        if fatal:
            text.append(f"  fatal: {fatal}", style="bold red")
        return text
    text = Text("errors\n", style="bold red", no_wrap=True, overflow="ellipsis")
    for kind, n in sorted(counts.items()):
        text.append(f"  {kind} x{int(n)}", style="red")
        if kind in latest:
            text.append(f"  latest: {latest[kind]}")
        text.append("\n")
    if fatal:
        text.append(f"  fatal: {fatal}\n", style="bold red")
    text.rstrip()
    return text


def actors(view: dict[str, Any], compact: bool) -> RenderableType | None:
    actor_rows, nodes = view.get("actors") or [], view.get("nodes") or []
    if not actor_rows and not nodes:
        return None
    if compact:
        states = Tally(a["state"] for a in actor_rows)
        restarts = sum(int(a.get("restarts", 0)) for a in actor_rows)
        alive = sum(1 for n in nodes if n["state"] == "alive")
        text = Text("actors ", style="bold", no_wrap=True, overflow="ellipsis")
        text.append(", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "-")
        text.append(f" ({restarts} restarts)" if restarts else "")
        text.append("  nodes ", style="bold")
        text.append(f"{alive}/{len(nodes)} alive")
        return text
    table = Table(title="nodes and actors", title_justify="left")
    for col in ("kind", "name", "node", "state", "restarts", "in flight", "last push"):
        table.add_column(col, no_wrap=True, overflow="ellipsis")
    for node in nodes:
        table.add_row(
            "node", "", node["node"], node["state"], "", "", f"{node.get('actors', 0)} actors"
        )
    for actor in actor_rows:
        age = actor.get("last_push_s")
        table.add_row(
            "actor", actor["name"], actor.get("node") or "?", actor["state"],
            str(int(actor.get("restarts", 0))), str(int(actor.get("in_flight", 0))),
            f"{age:.1f}s ago" if age is not None else "-",
        )  # fmt: skip
    return table


def replicas(view: dict[str, Any], compact: bool) -> RenderableType | None:
    """One row per replica: its phase from the supervisor, load from the workers' routers."""
    load = dict(view.get("gauges", {}).get("replicas") or {})
    states = view.get("replica_states") or []
    if not load and not states:
        return None
    if compact:
        phases = Tally(str(rep.get("phase", "?")) for rep in states)
        text = Text("teacher replicas ", style="bold", no_wrap=True, overflow="ellipsis")
        text.append(
            ", ".join(f"{n} {p}" for p, n in sorted(phases.items())) or f"{len(load)} routed"
        )
        text.append(f"  in flight {int(sum(load.values()))}")
        return text
    table = Table(title="teacher replicas", title_justify="left")
    for col in ("replica", "url", "state", "restarts", "in flight"):
        table.add_column(col, no_wrap=True, overflow="ellipsis")
    for rep in states:
        url = rep.get("url")
        failure = f" ({rep['last_failure']})" if rep.get("last_failure") else ""
        table.add_row(
            str(rep.get("index", "?")), url or "-", f"{rep.get('phase', '?')}",
            Text(f"{int(rep.get('restarts', 0))}{failure}"),  # a failure's text is data
            str(int(load.pop(url, 0))) if url else "-",
        )  # fmt: skip
    for url, n in sorted(load.items()):  # routed to, not (or no longer) in the status
        if n:
            table.add_row("?", url, "-", "-", str(int(n)))
    return table


def recent(view: dict[str, Any]) -> Table | None:
    rows = view.get("recent") or []
    if not rows:
        return None
    table = Table(title="recent accepted rows", title_justify="left", expand=True)
    table.add_column("question", ratio=5, overflow="ellipsis", no_wrap=True)
    table.add_column("answer", ratio=1, overflow="ellipsis", no_wrap=True)
    for row in rows[-3:]:
        question = str(row.get("question", "")).replace("\n", " ")
        table.add_row(Text(question), Text(str(row.get("answer"))))  # data, never markup
    return table


def sections(view: dict[str, Any], rates: Rates, width: int) -> list[Section]:
    """Every section the view has something for, most important first."""
    out = [Section("headline", headline(view, rates, width), droppable=False)]
    err = errors(view, compact=False)
    if err is not None:
        out.append(Section("errors", err, errors(view, compact=True), droppable=False))
    out.append(Section("funnel", funnel(view, False), funnel(view, True), droppable=False))
    for name, build in (("replicas", replicas), ("actors", actors)):
        full = build(view, compact=False)
        if full is not None:
            out.append(Section(name, full, build(view, compact=True)))
    rows = recent(view)
    if rows is not None:
        out.append(Section("recent", rows))
    return out
