"""``mathsynth submit``: send ``mathsynth run ...`` to a Ray cluster as a job, then follow it.

It connects to the cluster's dashboard (Ray's ``JobSubmissionClient``) with the Ray auth
token when one is found here (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
``~/.ray/auth_token``; get it with ``ray get-auth-token`` on the head), checks it first
with one request so a missing token (HTTP 401) or a wrong one (403) gives a message saying
what to do, builds the job's runtime env (``working_dir``, ``pip``, and the teacher key plus
``--env-var`` values *sealed* with that token, see ``sealed_env``), submits under an id derived
from the command (``mathsynth-<hash>-<n>``, n counting earlier submissions of it), prints the
id and follows the job (``orchestrator.cluster.watch``, or the job's log stream if that cannot attach).
Ctrl-C stops the job and waits until it has ended: ``ray job stop`` sends the driver SIGTERM,
which ``mathsynth run`` handles like Ctrl-C (workers commit what they finished), and the
runtime env gives it ``RAY_JOB_STOP_WAIT_TIME_S`` (default 60 s, Ray's own is 3 s) before
Ray's SIGKILL. Submitting the same command again resumes from the output directory.
A head that was just started is waited for (``--wait``, default 60 s): first its dashboard
(``jobs_api.connect``), then its job agent, which answers 5xx until it is up.

What it does NOT do: start clusters (``ray up cluster.yaml``), open tunnels (``ray dashboard
cluster.yaml``), copy outputs back, or run anything itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import tenacity
from rich.console import Console

from orchestrator.cluster.jobs_api import JobsAPIError, JobsHTTPError, connect, dashboard_address
from orchestrator.cluster.sealed_env import SealError, ray_auth_token, seal

STOP_WAIT_S = 60
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 130}


class SubmitError(JobsAPIError):
    """The job cannot be submitted or followed; the message says what to do."""


@dataclass
class SubmitOptions:
    run_args: list[str]
    address: str | None = None
    working_dir: str | None = "."
    pip: list[str] = field(default_factory=list)
    env_vars: list[str] = field(default_factory=list)
    submission_id: str | None = None
    watch: bool = True
    stop_wait_s: int = STOP_WAIT_S
    wait_s: float = 60.0  # for a head that is still starting (dashboard, then job agent)


def api_key_env(run_args: Sequence[str]) -> str:
    """The env var holding the teacher key for these run args (``--api-key-env`` or default)."""
    for i, arg in enumerate(run_args):
        if arg == "--api-key-env" and i + 1 < len(run_args):
            return run_args[i + 1]
        if arg.startswith("--api-key-env="):
            return arg.split("=", 1)[1]
    return "OPENAI_API_KEY"


def build_runtime_env(
    opts: SubmitOptions, token: str | None, environ: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """working_dir / pip as given; the key and --env-var values sealed; the stop grace time."""
    missing = [name for name in opts.env_vars if name not in environ]
    if missing:
        raise SubmitError(f"--env-var {', '.join(missing)}: not set in this environment")
    names = [api_key_env(opts.run_args), *opts.env_vars]
    secrets = {name: environ[name] for name in dict.fromkeys(names) if name in environ}
    try:
        env_vars = seal(secrets, token)
    except SealError as err:
        raise SubmitError(str(err)) from None
    env_vars["RAY_JOB_STOP_WAIT_TIME_S"] = str(opts.stop_wait_s)
    runtime_env: dict[str, Any] = {"env_vars": env_vars}
    if opts.working_dir:
        runtime_env["working_dir"] = opts.working_dir
    if opts.pip:
        runtime_env["pip"] = list(opts.pip)
    return runtime_env


def entrypoint(run_args: Sequence[str], events_flag: str) -> str:
    """``mathsynth run ARGS`` plus ``events_flag`` (log-friendly progress) unless given."""
    args = list(run_args)
    if not {"--json", "--no-progress", "--progress"} & set(args):
        args.append(events_flag)
    return shlex.join(["mathsynth", "run", *args])


def next_submission_id(command: str, taken: set[str]) -> str:
    """``mathsynth-<hash of the command>-<n>``: the same command gets the next free ``n``."""
    base = "mathsynth-" + hashlib.sha256(command.encode()).hexdigest()[:10]
    n = 1
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def status_of(client: Any, job_id: str) -> str:
    status = client.get_job_status(job_id)
    return str(getattr(status, "value", status))


def wait_until_ended(client: Any, job_id: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    status = status_of(client, job_id)
    while status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        status = status_of(client, job_id)
    return status


def _tail_logs(client: Any, job_id: str, console: Console) -> None:
    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            console.out(lines, end="", highlight=False)

    asyncio.run(tail())


def follow(client: Any, job_id: str, address: str, console: Console) -> str:
    """Follow the job to its end (the live view of ``mathsynth watch`` when available)."""
    from orchestrator.cluster.watch import watch_target

    try:
        watch_target(job_id, address, False, console)
    except JobsAPIError as err:
        console.print(f"watch: {err}; following the job's log instead", highlight=False)
        _tail_logs(client, job_id, console)
    return wait_until_ended(client, job_id, 60)


def _accepted(client: Any, job_id: str) -> bool:
    try:
        status_of(client, job_id)
    except JobsHTTPError:
        return False
    return True


def _starting(err: BaseException) -> bool:
    """A 5xx answer: the head is up but its job agent is not (yet)."""
    return isinstance(err, JobsHTTPError) and err.status >= 500


def submit_when_ready(
    client: Any, command: str, runtime_env: dict[str, Any], job_id: str, wait_s: float
) -> None:
    """Submit as ``job_id``; a head that answers 5xx (its job agent is still starting) is asked
    again for up to ``wait_s`` (tenacity, as ``jobs_api`` waits for the dashboard). The fixed id
    makes this safe: a try whose answer was lost but whose job exists counts as accepted, and
    is never submitted twice."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_starting),
        stop=tenacity.stop_after_delay(wait_s),
        wait=tenacity.wait_exponential(multiplier=0.5, max=5),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            try:
                client.submit_job(entrypoint=command, runtime_env=runtime_env, submission_id=job_id)
            except JobsHTTPError as err:
                if _starting(err) and _accepted(client, job_id):
                    return
                raise


def submit_job(opts: SubmitOptions, console: Console, events_flag: str = "--json") -> int:
    """Submit, print the job id, follow it; the exit code mirrors the job's end state."""
    address = dashboard_address(opts.address)
    token = ray_auth_token()
    client = connect(address, token, opts.wait_s)
    runtime_env = build_runtime_env(opts, token)
    command = entrypoint(opts.run_args, events_flag)
    taken = {job.submission_id for job in client.list_jobs() if job.submission_id}
    job_id = opts.submission_id or next_submission_id(command, taken)
    try:
        submit_when_ready(client, command, runtime_env, job_id, opts.wait_s)
    except JobsHTTPError as err:
        raise SubmitError(f"the cluster did not accept the job: {err}") from None
    print(job_id, flush=True)
    console.print(
        f"submitted [bold]{job_id}[/] to {address}: {command}\n"
        f"  follow: mathsynth watch {job_id} --address {address}   stop: ray job stop {job_id}",
        highlight=False,
    )
    if not opts.watch:
        return 0
    try:
        status = follow(client, job_id, address, console)
    except KeyboardInterrupt:
        console.print(f"stopping {job_id}; waiting for it to commit finished work...")
        client.stop_job(job_id)
        status = wait_until_ended(client, job_id, opts.stop_wait_s + 30)
        console.print(f"{job_id}: {status}; submit the same command again to resume")
        return 130
    console.print(f"{job_id}: {status}", highlight=False)
    return EXIT_CODES.get(status, 1)
