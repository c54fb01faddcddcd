"""The run summary (``summary.json``, ``job_report.build_summary``) as a table for people.

Grouped: seeds (read, done before, accepted, rejected, failed, not run), rows (written,
dataset total, shards, duplicates, items parsed per stage), teacher (requests, tokens, cost,
errors, replies cut by ``max_tokens``, replicas), rejections by reason (most first, with their
share), time and recovery (elapsed, requeued chunks, chunks per node, interrupted, fatal, stopped),
the run (id, version, fingerprint), and all runs into the output (``totals``).
Keys it does not know are listed under "other", so a new summary field is never hidden.
``--json`` keeps the machine form (the summary event); this module only draws.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from orchestrator.telemetry.eta import fmt_duration

# (group, [(key, label)]) in the order shown
GROUPS: list[tuple[str, list[tuple[str, str]]]] = [
    ("seeds", [("seeds_read", "read"), ("seeds_skipped_already_finished", "done before"),
               ("seeds_accepted", "accepted"), ("seeds_rejected", "rejected"),
               ("seeds_failed", "failed"), ("seeds_not_run", "not run")]),
    ("rows", [("rows_written", "written by this run"), ("rows_total", "in the dataset"),
              ("shards_total", "shards"), ("duplicates", "duplicates dropped"),
              ("items_parsed_by_stage", "items parsed")]),
    ("teacher", [("requests", "HTTP requests"), ("completions", "replies"),
                 ("cache_hits", "from the reply log"), ("prompt_tokens", "prompt tokens"),
                 ("completion_tokens", "completion tokens"), ("cost_usd", "cost"),
                 ("projected_cost_usd", "projected cost"), ("teacher_errors", "errors"),
                 ("teacher_length", "cut by max_tokens"), ("teacher_replicas", "replicas")]),
    ("time", [("elapsed_s", "elapsed"), ("chunks_requeued", "chunks requeued"),
              ("chunks_by_node", "chunks by node"), ("interrupted", "interrupted"),
              ("fatal", "fatal"), ("stopped", "stopped"), ("state", "state"),
              ("configuration_change", "configuration")]),
    ("run", [("run_id", "id"), ("version", "mathsynth"), ("fingerprint", "fingerprint")]),
]  # fmt: skip
# ``totals`` (every run into the output, from the files on disk): (key, label)
TOTALS = [("runs", "runs"), ("seeds", "seeds"), ("rows", "rows"),
          ("rejected_rows", "rejected rows"), ("duplicates", "duplicates"),
          ("near_duplicates", "near duplicates"), ("requests", "HTTP requests"),
          ("cache_hits", "from the reply log"), ("prompt_tokens", "prompt tokens"),
          ("completion_tokens", "completion tokens"), ("cost_usd", "cost")]  # fmt: skip
SKIPPED = {"runs", "started"}  # every run's entry (in summary.json), the start time
REJECTED = "rejected_by_reason"


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _value(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key.endswith("cost_usd"):
        return f"${value:,.4f}"
    if key == "elapsed_s":
        return f"{fmt_duration(value)} ({value:,.1f}s)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if key == "chunks_by_node":  # node ids are 56 hex digits: 12 tell them apart
            value = {node[:12]: n for node, n in value.items()}
        if key == "teacher_replicas":  # {"replicas": [status rows], counters...}
            value = {k: v for k, v in value.items() if k != "replicas"} | {
                "replicas": len(value.get("replicas") or [])
            }
        shown = {k.removeprefix("error:"): v for k, v in value.items() if v not in (0, None)}
        return ", ".join(f"{k} {_number(v)}" for k, v in shown.items()) or "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return _number(value)


def summary_table(summary: dict[str, Any], title: str = "run summary") -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=box.SIMPLE_HEAD,
                  pad_edge=False)  # fmt: skip
    table.add_column(style="bold", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(justify="right", overflow="fold")
    known = {REJECTED, "totals", *SKIPPED}
    for group, items in GROUPS:
        known.update(key for key, _ in items)
        _group(table, group, [(label, _value(key, summary[key])) for key, label in items
                              if key in summary])  # fmt: skip
        if group == "rows":
            _group(table, "rejected", _rejections(summary.get(REJECTED) or {}))
    totals = summary.get("totals") or {}
    _group(table, "all runs", [(label, _value(key, totals[key])) for key, label in TOTALS
                               if key in totals])  # fmt: skip
    _group(table, "other", [(k, _value(k, v)) for k, v in summary.items() if k not in known])
    return table


def _group(table: Table, name: str, rows: list[tuple[str | Text, str]]) -> None:
    for i, (label, value) in enumerate(rows):
        table.add_row(name if i == 0 else "", label, value, end_section=i == len(rows) - 1)


def _rejections(rejected: dict[str, Any]) -> list[tuple[str | Text, str]]:
    """Rejections by reason, most first, each with its share of all rejections."""
    total = sum(rejected.values()) or 1
    ranked = sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(Text(reason, overflow="fold"), f"{_number(n)} ({n / total:.0%})")
            for reason, n in ranked]  # fmt: skip
