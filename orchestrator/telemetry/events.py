"""The ``--json`` event stream: one JSON object per line, each with ``event`` and ``schema``.

    {"event": "startup", "schema": 1, "time": ..., "step": "starting Ray", "elapsed_s": 0.4}
    {"event": "progress", "schema": 1, ...the progress view (``dashboard`` documents it)}
    {"event": "summary", "schema": 1, "summary": {...summary.json}}

``schema`` is ``SCHEMA``, raised when a field changes meaning or goes away (new fields do not
raise it). Counts are JSON integers: every counter and gauge, except measurements named
``*_seconds`` / ``*_s`` (floats). ``parse_event`` reads a line back (``mathsynth watch`` on a
Ray job's log) and refuses events of a newer schema than this version knows. This module does
not print or decide when to (``orchestrator.telemetry.progress`` does).
"""

from __future__ import annotations

import json
import time
from typing import Any

SCHEMA = 1
MEASURE_SUFFIXES = ("_seconds", "_s")


class EventSchemaError(ValueError):
    """An event from a newer mathsynth than this one."""


def _number(name: str, value: Any) -> Any:
    """A count as an int; a measurement (``*_seconds``, ``*_s``) or non-number unchanged."""
    if isinstance(value, bool) or not isinstance(value, float) or name.endswith(MEASURE_SUFFIXES):
        return value
    return int(value) if value.is_integer() else value


def with_int_counts(view: dict[str, Any]) -> dict[str, Any]:
    """``view`` with its counters and gauges as integers where they are counts."""
    out = dict(view)
    if isinstance(view.get("counters"), dict):
        out["counters"] = {
            group: {name: _number(name, v) for name, v in names.items()}
            for group, names in view["counters"].items()
        }
    if isinstance(view.get("gauges"), dict):
        out["gauges"] = {name: _number(name, v) for name, v in view["gauges"].items()}
    return out


def progress_event(view: dict[str, Any]) -> dict[str, Any]:
    return {"event": "progress", "schema": SCHEMA, **with_int_counts(view)}


def summary_event(summary: dict[str, Any]) -> dict[str, Any]:
    return {"event": "summary", "schema": SCHEMA, "summary": summary}


def startup_event(step: str, elapsed_s: float) -> dict[str, Any]:
    return {"event": "startup", "schema": SCHEMA, "time": time.time(), "step": step,
            "elapsed_s": round(elapsed_s, 2)}  # fmt: skip


def dumps(event: dict[str, Any]) -> str:
    """One line (keys in the order given: a view's stages stay in funnel order)."""
    return json.dumps(event, default=str)


def parse_event(line: str) -> dict[str, Any] | None:
    """An event printed by ``mathsynth run --json``, or None for any other line.
    ``EventSchemaError`` for one of a newer schema."""
    text = line.strip()
    if not text.startswith('{"event"'):
        return None
    try:
        event = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    schema = event.get("schema", SCHEMA)  # events of mathsynth before 1 had none
    if isinstance(schema, int) and schema > SCHEMA:
        raise EventSchemaError(
            f"the job prints events of schema {schema}; this mathsynth reads up to {SCHEMA}: "
            "upgrade mathsynth"
        )
    return event
