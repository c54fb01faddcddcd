"""The ``mathsynth`` cluster commands: ``submit`` (a run as a Ray job) and ``watch`` (follow one).

Plain functions with typer annotations that turn flags into calls of ``orchestrator.cluster.submit``
and ``orchestrator.cluster.watch``, which do the work (the Jobs API, sealed secrets, the live view).
``orchestrator.cli.app`` registers them on its typer app; this module does not create or touch the
app (importing it registers nothing), and it holds no job logic of its own.
"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.output import console, fail, print_run_summary

__all__ = ["submit", "watch"]


def submit(
    run_args: Annotated[
        list[str], typer.Argument(help="arguments of `mathsynth run`, after --", show_default=False)
    ],
    address: Annotated[
        str | None, typer.Option(help="Ray dashboard, e.g. http://127.0.0.1:8265 (RAY_ADDRESS)")
    ] = None,
    working_dir: Annotated[str, typer.Option(help="directory shipped to the job")] = ".",
    pip: Annotated[list[str], typer.Option(help="pip package for the job (repeatable)")] = [],  # noqa: B006
    env_var: Annotated[
        list[str], typer.Option(help="env var passed to the job, sealed (repeatable)")
    ] = [],  # noqa: B006
    submission_id: Annotated[
        str | None, typer.Option(help="job id (default: from the command)")
    ] = None,
    no_watch: Annotated[
        bool, typer.Option("--no-watch", help="print the job id and return")
    ] = False,
    wait: Annotated[
        float, typer.Option(help="seconds to wait for a head that is still starting")
    ] = 60.0,
) -> None:
    """Run `mathsynth run ARGS` as a Ray job on a cluster and follow it (Ctrl-C stops it)."""
    from orchestrator.cluster.jobs_api import JobsAPIError
    from orchestrator.cluster.submit import SubmitOptions, submit_job
    from orchestrator.telemetry.ray_output import plain_streams

    plain_streams()  # the job's log lines without colour codes when not a terminal

    opts = SubmitOptions(run_args, address, working_dir or None, pip, env_var, submission_id,
                         watch=not no_watch, wait_s=wait)  # fmt: skip
    try:  # the job's driver prints JSON progress events, which `watch` renders
        code = submit_job(opts, console, "--json")
    except JobsAPIError as err:
        raise fail(str(err)) from None
    raise typer.Exit(code)


def watch(
    target: Annotated[str, typer.Argument(help="a Ray job id (with --address) or an output dir")],
    address: Annotated[
        str | None, typer.Option(help="Ray dashboard, e.g. http://HOST:8265 (RAY_ADDRESS)")
    ] = None,
    json_events: Annotated[bool, typer.Option("--json", help="print JSON events")] = False,
) -> None:
    """Follow a running job live (the same view `run` shows); exits when the job ends."""
    from orchestrator.cluster.jobs_api import JobsAPIError
    from orchestrator.cluster.watch import watch_target
    from orchestrator.telemetry.ray_output import plain_streams

    plain_streams()  # a job's log lines re-printed without colour codes when not a terminal
    try:
        code, summary = watch_target(target, address, json_events, console)
    except JobsAPIError as err:
        raise fail(str(err)) from None
    if summary is not None and not json_events:
        print_run_summary(summary)
    raise typer.Exit(code)
