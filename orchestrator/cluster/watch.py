"""``mathsynth watch``: follow a running job with the same view ``mathsynth run`` shows.

Two sources of progress views (``orchestrator.telemetry.dashboard`` documents them):

* an output directory or URL: the driver keeps ``<out>/_mathsynth/progress.json`` current
  (``progress.ProgressFile``), so a local run or one writing to a shared filesystem / bucket is
  followed by polling that file;
* a Ray job id with ``--address http://HOST:8265``: the job's driver runs ``mathsynth run
  --json``, whose stdout is one JSON event per line; this tails the job's logs through
  ``ray.job_submission.JobSubmissionClient`` and renders the events (other log lines are shown
  as they are, or dropped with ``--json``).

Both draw with the same ``ProgressDisplay`` and panel as ``mathsynth run``. Every new view is
drawn as it is read (no throttle of its own on top of the poll), the file is polled every
``poll_s`` (0.5 s, the driver's own poll), and a job's log lines are re-printed without ANSI
colour codes when the output is not a terminal.

Token authentication (``RAY_AUTH_MODE=token``): ``orchestrator.cluster.jobs_api.connect`` finds the
token where Ray does and says whether it is missing (401) or rejected (403). Watching ends when the job does (exit code 0 when it
finished every seed, 1 when seeds failed or were not run, or it failed or was stopped, 130
when it was interrupted: the code ``mathsynth run`` gave). It never starts,
stops or changes a job.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from orchestrator.cluster.jobs_api import JobsAPIError, connect
from orchestrator.telemetry.events import EventSchemaError, parse_event
from orchestrator.telemetry.progress import PROGRESS_FILE, ProgressDisplay
from orchestrator.telemetry.ray_output import strip_ansi

STALE_S = 30.0
EXIT_CODES = {"finished": 0, "failed": 1, "interrupted": 130}


def exit_code(state: str | None, summary: dict[str, Any] | None) -> int:
    """The exit code ``mathsynth run`` gave its run: 0 only when every seed finished (a run
    that ended with failed or unrun seeds is 1), 1 failed, 130 interrupted."""
    code = EXIT_CODES.get(state or "", 1)
    if code == 0 and summary and (summary.get("seeds_failed") or summary.get("seeds_not_run")):
        return 1
    return code


class WatchError(JobsAPIError):
    """Cannot watch: unreachable dashboard, missing/rejected token, unknown job."""


def watch_target(
    target: str, address: str | None, json_events: bool, console: Console, poll_s: float = 0.5
) -> tuple[int, dict[str, Any] | None]:
    """Follow ``target`` until its job ends; (exit code, the run's summary if it printed one)."""
    # the panel and --json: every new view (they come at most every poll / every second);
    # plain lines: one per 5 s
    display = ProgressDisplay(console, mode="json" if json_events else "auto", log_every_s=5.0,
                              json_every_s=0, refresh_s=0)  # fmt: skip
    ray_address = address or os.environ.get("RAY_ADDRESS", "")
    is_output = "://" in target and not target.startswith(("http://", "https://"))
    if is_output or Path(target).exists() or not ray_address.startswith("http"):
        return watch_output(target, display, console, poll_s)
    return watch_job(target, ray_address, display, console)


def watch_output(
    target: str, display: ProgressDisplay, console: Console, poll_s: float = 0.5
) -> tuple[int, dict[str, Any] | None]:
    from orchestrator.output.store import OutputStore

    store = OutputStore(target)
    seen: float | None = None
    warned = False
    with display:
        while True:
            polled = time.monotonic()
            try:
                view = store.read_json(PROGRESS_FILE)
            except json.JSONDecodeError:  # a backend without atomic writes, mid-write
                view = None
            if view is None and not warned:
                console.print(f"waiting for {target}/{PROGRESS_FILE} ...", highlight=False)
                warned = True
            elif view is not None and view.get("time") != seen:
                seen = view.get("time")
                display.update(view)
                if view.get("state", "running") != "running":
                    summary = view.get("summary")
                    if summary is not None:
                        display.finish(summary)
                    return exit_code(view["state"], summary), summary
            elif view is not None and time.time() - float(seen or 0) > STALE_S and not warned:
                console.print(f"no progress for {STALE_S:.0f}s: is the run still going?")
                warned = True
            time.sleep(max(0.0, poll_s - (time.monotonic() - polled)))  # reading took time


def watch_job(
    job_id: str, address: str, display: ProgressDisplay, console: Console
) -> tuple[int, dict[str, Any] | None]:
    client = connect(address)
    if not any(job_id in (j.submission_id, j.job_id) for j in client.list_jobs()):
        raise WatchError(f"no job {job_id} on {address} (see `ray job list --address {address}`)")
    summary: dict[str, Any] | None = None
    state: str | None = None

    def line(text: str) -> None:
        nonlocal summary, state
        try:
            event = parse_event(text)
        except EventSchemaError as err:
            raise WatchError(str(err)) from None
        if event is None:
            if display.mode != "json" and text.strip():
                console.print(strip_ansi(text), markup=False, highlight=False, style="dim",
                              soft_wrap=True)  # fmt: skip
        elif event.get("event") == "summary":
            summary = event.get("summary")
            display.finish(summary or {})
        elif event.get("event") == "startup":
            display.step(str(event.get("step", "?")))
        elif event.get("event") == "progress":
            state = event.get("state")
            display.update(event)

    async def tail() -> None:
        pending = ""
        async for chunk in client.tail_job_logs(job_id):
            pending += chunk
            *lines, pending = pending.split("\n")
            for text in lines:
                line(text)
        if pending:
            line(pending)

    with display:
        asyncio.run(tail())
    from ray.job_submission import JobStatus

    status = client.get_job_status(job_id)
    if state in EXIT_CODES:
        return exit_code(state, summary), summary
    if status != JobStatus.SUCCEEDED:
        message = client.get_job_info(job_id).message or ""
        console.print(f"job {job_id} ended {status}: {message}", highlight=False)
        return 1, summary
    return 0, summary
