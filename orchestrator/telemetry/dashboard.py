"""The dashboard panel: one ``rich`` renderable drawn from a progress view and its rates.

A *progress view* is the JSON-able dict the engine builds every poll (``job_report.progress_view``)
and writes to ``<out>/_mathsynth/progress.json`` / prints with ``--json``:

    state        running | finished | failed | interrupted
    time         epoch seconds of the view (rates are computed on it, so replays render right)
    counters     {group: {name: n}} (orchestrator.telemetry.counters): seeds, teacher, stages, writer
    gauges       {"in_flight": n, "waiting": n, "replicas": {url: in_flight}} summed over workers
    queued       {"chunks": n, "seeds": n, "outstanding_chunks": n} held by the driver
    actors       [{"name", "state", "node", "last_push_s", "in_flight", "source", "restarts"}]
    nodes        [{"node", "state", "actors"}]
    replica_states  [{"index", "phase", "url", "restarts", "last_failure", ...}] teacher
                 replicas as their supervisor sees them (kind vllm only)
    errors       [{"kind", "message", "worker", "time"}] latest few, oldest first
    recent       [{"question", "answer"}] a few recently accepted rows
    total_seeds, skipped, cost_usd, projected_cost_usd, elapsed_s, fatal

``render`` draws it; ``Rates`` carries what only a watcher over time knows (tokens/s, ETA, the
sparkline history), computed by ``orchestrator.telemetry.progress``. This module keeps no state, reads
no files and never talks to Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from orchestrator.telemetry.counters import Counters

NOT_STAGES = ("teacher", "seeds", "writer", "seed_failures")
SPARK = "▁▂▃▄▅▆▇█"


@dataclass
class Rates:
    prompt_tps: float = 0.0
    completion_tps: float = 0.0
    seeds_per_s: float = 0.0
    eta_s: float | None = None
    history: list[float] = field(default_factory=list)  # tokens/s, oldest first


def sparkline(values: list[float]) -> str:
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1)))] for v in values)


def fmt_eta(eta_s: float | None) -> str:
    if eta_s is None:
        return "-"
    hours, rest = divmod(int(eta_s), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def seeds_done(view: dict[str, Any]) -> int:
    """Seeds finished so far, including those a previous run finished (skipped)."""
    return int(sum(view.get("counters", {}).get("seeds", {}).values())) + int(
        view.get("skipped", 0)
    )


def funnel_rows(counters: Counters) -> list[tuple[str, float, float, dict[str, float]]]:
    """(stage, in, out, drops by reason): teacher stages (which *produce* items) first, then
    filter stages in first-seen order, then dedup, near-dedup and the writer."""
    producing, filtering, dedups = [], [], []
    for group, names in counters.as_dict().items():
        if group in NOT_STAGES:
            continue
        drops = {
            n.removeprefix("dropped:"): v for n, v in names.items() if n.startswith("dropped:")
        }
        row = (group, names.get("seen", 0), names.get("kept", names.get("produced", 0)), drops)
        if "produced" in names:
            producing.append(row)
        elif group in ("dedup", "near_dedup"):
            dedups.append(row)
        else:
            filtering.append(row)
    rows = producing + filtering + sorted(dedups, key=lambda r: r[0] != "dedup")
    kept_last = rows[-1][2] if rows else 0
    rows.append(("written", kept_last, counters.get("writer", "rows"), {}))
    return rows


def _rate(stage: str, seen: float, out: float, produces: bool) -> str:
    if not seen:
        return "-"
    return f"x{out / seen:.1f}" if produces else f"{out / seen:.0%}"


def _funnel(counters: Counters) -> Table:
    table = Table(title="filter funnel", title_justify="left", expand=False)
    for col in ("stage", "in", "out", "accept", "rejected by reason"):
        table.add_column(col, overflow="fold")
    producing = {g for g, names in counters.as_dict().items() if "produced" in names}
    for stage, seen, out, drops in funnel_rows(counters):
        reasons = ", ".join(f"{k} {int(v)}" for k, v in sorted(drops.items(), key=lambda x: -x[1]))
        rate = _rate(stage, seen, out, stage in producing)
        table.add_row(stage, str(int(seen)), str(int(out)), rate, reasons)
    return table


def _headline(view: dict[str, Any], rates: Rates) -> Table:
    counters = Counters(view.get("counters", {}))
    seeds, gauges, queued = counters.group("seeds"), view.get("gauges", {}), view.get("queued", {})
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]seeds[/] {seeds_done(view)}/{view.get('total_seeds', 0)}",
        f"accepted {int(seeds.get('accepted', 0))}",
        f"rejected {int(seeds.get('rejected', 0))}",
        f"failed {int(seeds.get('failed', 0))}",
        f"skipped {int(view.get('skipped', 0))}",
        f"ETA {fmt_eta(rates.eta_s)}",
    )
    head.add_row(
        f"[bold]requests[/] {int(counters.get('teacher', 'requests'))}",
        f"in flight {int(gauges.get('in_flight', 0))}",
        f"waiting for a slot {int(gauges.get('waiting', 0))}",
        f"queued seeds {int(queued.get('seeds', 0))}",
        f"queued chunks {int(queued.get('chunks', 0))}",
        f"rows {int(counters.get('writer', 'rows'))}",
    )
    head.add_row(
        f"[bold]tokens/s[/] prompt {rates.prompt_tps:,.1f}",
        f"completion {rates.completion_tps:,.1f}",
        f"{sparkline(rates.history)}",
        f"prompt tokens {int(counters.get('teacher', 'prompt_tokens'))}",
        f"completion tokens {int(counters.get('teacher', 'completion_tokens'))}",
        f"elapsed {fmt_eta(view.get('elapsed_s'))}",
    )
    if view.get("cost_usd") is not None:
        projected = view.get("projected_cost_usd")
        head.add_row(
            f"[bold]cost[/] ${view['cost_usd']:.4f}",
            f"projected ${projected:.4f}" if projected is not None else "projected -",
        )
    return head


def _actors(view: dict[str, Any]) -> Table | None:
    actors, nodes = view.get("actors") or [], view.get("nodes") or []
    if not actors and not nodes:
        return None
    table = Table(title="nodes and actors", title_justify="left", expand=False)
    for col in ("kind", "name", "node", "state", "restarts", "in flight", "last push"):
        table.add_column(col)
    for node in nodes:
        table.add_row(
            "node", "", node["node"], node["state"], "", "", f"{node.get('actors', 0)} actors"
        )
    for actor in actors:
        age = actor.get("last_push_s")
        table.add_row(
            "actor", actor["name"], actor.get("node") or "?", actor["state"],
            str(int(actor.get("restarts", 0))), str(int(actor.get("in_flight", 0))),
            f"{age:.1f}s ago" if age is not None else "-",
        )  # fmt: skip
    return table


def _replicas(view: dict[str, Any]) -> Table | None:
    """One row per replica: its phase from the supervisor, load from the workers' routers."""
    load = dict(view.get("gauges", {}).get("replicas") or {})
    states = view.get("replica_states") or []
    if not load and not states:
        return None
    table = Table(title="teacher replicas", title_justify="left", expand=False)
    for col in ("replica", "url", "state", "restarts", "in flight"):
        table.add_column(col)
    for rep in states:
        url = rep.get("url")
        failure = f" ({rep['last_failure']})" if rep.get("last_failure") else ""
        table.add_row(
            str(rep.get("index", "?")), url or "-", f"{rep.get('phase', '?')}",
            Text(f"{int(rep.get('restarts', 0))}{failure}"),
            str(int(load.pop(url, 0))) if url else "-",
        )  # fmt: skip
    for url, n in sorted(load.items()):  # routed to, not (or no longer) in the status
        if not n:
            continue
        table.add_row("?", url, "-", "-", str(int(n)))
    return table


def _errors(view: dict[str, Any]) -> Text | None:
    teacher = Counters(view.get("counters", {})).group("teacher")
    counts = {k.removeprefix("error:"): v for k, v in teacher.items() if k.startswith("error:")}
    latest: dict[str, str] = {}
    for err in view.get("errors") or []:
        latest[err.get("kind", "?")] = err.get("message", "")
        counts.setdefault(err.get("kind", "?"), 0)
    if not counts and not view.get("fatal"):
        return None
    text = Text("errors\n", style="bold red")
    for kind, n in sorted(counts.items()):
        text.append(f"  {kind} x{int(n)}", style="red")
        if kind in latest:
            text.append(f"  latest: {latest[kind][:160]}")
        text.append("\n")
    if view.get("fatal"):
        text.append(f"  fatal: {view['fatal'][:200]}\n", style="bold red")
    return text


def _recent(view: dict[str, Any]) -> Table | None:
    recent = view.get("recent") or []
    if not recent:
        return None
    table = Table(title="recent accepted rows", title_justify="left", expand=True)
    table.add_column("question", ratio=5, overflow="ellipsis", no_wrap=True)
    table.add_column("answer", ratio=1, no_wrap=True)
    for row in recent[-3:]:
        question = str(row.get("question", "")).replace("\n", " ")
        table.add_row(Text(question), Text(str(row.get("answer"))))  # data, never markup
    return table


def render(view: dict[str, Any], rates: Rates) -> Group:
    counters = Counters(view.get("counters", {}))
    parts: list[Any] = [_headline(view, rates), _funnel(counters)]
    for part in (_actors(view), _replicas(view), _errors(view), _recent(view)):
        if part is not None:
            parts.append(part)
    return Group(*parts)
