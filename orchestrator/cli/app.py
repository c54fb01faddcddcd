"""The ``mathsynth`` command line: ``run``, ``demo``, ``show``, ``stats``, ``repair``, ``mix``, ``push``,
``submit``, ``watch``, ``pipelines``, ``init``.

It turns flags, environment variables and the pipeline file into one validated config, picks
the teacher (a given OpenAI-compatible URL, OpenAI itself, or the built-in offline CPU teacher
when neither a URL nor a model is given), loads seeds and calls the engine. It holds no
pipeline logic of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from orchestrator.cli.cluster import submit, watch
from orchestrator.cli.data import mix, pipelines, push, repair, show, stats
from orchestrator.cli.output import console, fail, out, print_run_summary, print_summary
from orchestrator.cli.scaffold import init
from orchestrator.core.config import (
    ConfigError,
    PipelineConfig,
    base_dir,
    deep_update,
    read_yaml,
    resolve_paths,
    validate_pipeline,
)
from orchestrator.core.method_config import resolve_kind
from orchestrator.core.resources import resolve_pipeline
from orchestrator.core.seeds import SeedError, Seeds, seed_source
from orchestrator.methods.catalog import MethodError, method_of

HELP = (
    "mathsynth: turn seed math problems into a deduplicated, decontaminated, verified dataset "
    "of new ones, written by a teacher LLM (any OpenAI-compatible server, vLLM replicas or a "
    "built-in CPU teacher) with the work spread over Ray."
)
log = logging.getLogger(__name__)
app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
DEMO_SEEDS = "demo.jsonl"
OUT_HELP = "output dataset: a directory or an fsspec URL (s3://bucket/prefix, gs://...)"


def build_config(pipeline: str, overrides: dict[str, Any]) -> tuple[PipelineConfig, bool]:
    """Validated config and whether the built-in CPU teacher is needed."""
    path = resolve_pipeline(pipeline)
    data, node = read_yaml(path)
    return choose_teacher(deep_update(data, overrides), path, node)


def choose_teacher(
    data: dict[str, Any], path: Path, node: Any = None
) -> tuple[PipelineConfig, bool]:
    """``data`` (a pipeline file's content, overrides applied) validated, with the teacher
    chosen: the given URL, OpenAI itself, vLLM replicas, or the built-in CPU teacher."""
    method = resolve_kind(resolve_paths(data, base_dir(path)), path, node)
    if not method.needs_teacher:
        return validate_pipeline(data, path, node), False
    teacher = data.setdefault("teacher", {}) or {}
    data["teacher"] = teacher
    gpus = teacher.pop("gpus", None)  # --gpus N: N // tensor_parallel_size vLLM replicas
    if teacher.get("kind") == "vllm":
        _vllm_replicas(teacher, gpus, path)
        return validate_pipeline(data, path, node), False
    if gpus is not None:
        raise ConfigError("--gpus starts vLLM replicas: use it with --teacher vllm")
    teacher.setdefault("base_url", os.environ.get("OPENAI_BASE_URL"))
    builtin = not teacher.get("base_url") and not teacher.get("model")
    if teacher.get("base_url") and not teacher.get("model"):
        raise ConfigError(f"{path}: a teacher base URL needs a model name (--model)")
    if builtin:
        teacher["model"] = "builtin"
    return validate_pipeline(data, path, node), builtin


def _vllm_replicas(teacher: dict[str, Any], gpus: int | None, path: Path) -> None:
    """Checks for ``teacher.kind: vllm`` (mathsynth serves the model itself), and ``--gpus``."""
    if not teacher.get("model"):
        raise ConfigError(f"{path}: teacher kind 'vllm' needs the model to serve (--model)")
    if teacher.get("base_url"):
        raise ConfigError(f"{path}: teacher kind 'vllm' starts its own servers; drop base_url")
    if gpus is not None:
        tp = int(teacher.get("tensor_parallel_size", 1))
        if gpus < tp:
            raise ConfigError(f"--gpus {gpus} is fewer than tensor_parallel_size {tp}")
        teacher["replicas"] = gpus // tp


def run_pipeline(
    cfg: PipelineConfig, builtin: bool, seeds_spec: str | None, out_dir: str,
    allow_config_change: bool, progress: bool, json_events: bool = False,
    retry_length_rejected: bool = False,
    api_key: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    from orchestrator.engine.driver import run_job
    from orchestrator.engine.preflight import workers_load_method
    from orchestrator.engine.ray_session import RayStart
    from orchestrator.methods.catalog import BUILTINS
    from orchestrator.output.store import OutputStore
    from orchestrator.teacher.local_cpu import LocalCPUTeacher
    from orchestrator.teacher.preflight import CheckInBackground
    from orchestrator.telemetry.progress import ProgressDisplay
    from orchestrator.telemetry.startup import no_startup

    with contextlib.ExitStack() as stack:
        mode = "json" if json_events else "auto"  # --json: one progress event per line
        display = (
            stack.enter_context(ProgressDisplay(console, mode=mode))
            if progress or json_events
            else None
        )
        step = display.step if display is not None else no_startup  # start-up, as it goes
        if display is not None:  # the engine's warnings as lines of the display
            stack.enter_context(display.showing_warnings("orchestrator", "mathsynth"))
        step("loading seeds")
        seeds = resolve_seeds(cfg, seeds_spec)
        n_seeds = len(seeds)  # counted already (seed_source finds a bad row): before Ray starts
        ray_start = RayStart()  # Ray comes up while the teacher starts and the output is read
        stack.callback(ray_start.close)  # run_job closes it; this is for a failure before
        step("connecting to Ray" if ray_start.joins else "starting Ray")
        if api_key is None and cfg.teacher is not None:
            api_key = os.environ.get(cfg.teacher.api_key_env)
        if builtin and cfg.teacher is not None:
            step("starting the built-in CPU teacher (SmolLM2-135M via llama.cpp)")
            if display is None:
                console.print("starting the built-in CPU teacher (SmolLM2-135M via llama.cpp)...")
            local = stack.enter_context(LocalCPUTeacher())
            cfg = cfg.model_copy(
                update={"teacher": cfg.teacher.model_copy(
                    update={"base_url": local.base_url, "model": local.model})}
            )  # fmt: skip
        check = None  # a fresh output runs every seed: check the teacher while Ray starts
        if cfg.teacher is not None and not OutputStore(out_dir).is_output():
            check = CheckInBackground(cfg.teacher, api_key)
        headline = (
            f"{cfg.name}: {n_seeds} seeds -> {out_dir} (teacher "
            f"{cfg.teacher.model if cfg.teacher else 'none'}, {cfg.run.workers} workers x "
            f"{cfg.run.concurrency} in flight)"
        )
        if display is not None:
            display.note(headline)  # timestamped like every line when not a terminal
        else:
            console.print(headline, highlight=False, markup=False, soft_wrap=True)
        if cfg.kind not in BUILTINS:  # a user's method: can Ray workers import it?
            step("checking that Ray workers load the method")
            ray_start.join()
            workers_load_method(cfg)  # its error comes first: the check may wait on a timeout
        if check is not None:
            step("checking the teacher")
            for warning in check.result():
                log.warning(warning)
        summary = run_job(
            cfg, seeds, out_dir, api_key=api_key,
            on_progress=display.update if display else None,
            allow_config_change=allow_config_change, on_startup=step, preflight=check is None,
            retry_length_rejected=retry_length_rejected, ray_start=ray_start,
        )  # fmt: skip
        if display is not None:
            display.finish(summary)
        return summary


def _dry_run(cfg: PipelineConfig, seeds_spec: str | None, sample: int) -> dict[str, Any]:
    from orchestrator.engine.dryrun import estimate

    info = estimate(cfg, resolve_seeds(cfg, seeds_spec), sample)
    example = info.pop("example_prompt")
    if example:
        out.print(f"[bold]first prompt[/] ({info['prompt_tokens_per_request']} tokens, approx):")
        out.print(example, markup=False, highlight=False)
    print_summary(info, title="dry run: estimate (no request sent)")
    return info


def resolve_seeds(cfg: PipelineConfig, seeds_spec: str | None) -> Seeds:
    """Seeds from --seeds or the pipeline file, streamed (``core.seeds.SeedSource``); methods
    that make their own (arithmetic shard descriptors) do so when neither names any."""
    make_seeds = method_of(cfg).make_seeds
    if seeds_spec is None and cfg.seeds.path is None and make_seeds is not None:
        return make_seeds(cfg)[: cfg.run.limit]
    return seed_source(seeds_spec, cfg.seeds, cfg.run.limit)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _execute(pipeline: str, overrides: dict[str, Any], seeds: str | None, out_dir: str,
             allow_config_change: bool, progress: bool,
             dry_run: int | None = None, json_events: bool = False,
             retry_length_rejected: bool = False) -> dict[str, Any]:  # fmt: skip
    from orchestrator.cluster.sealed_env import SealError, unseal_environ
    from orchestrator.engine.capacity import CapacityError
    from orchestrator.engine.driver import FatalRunError
    from orchestrator.output.integrity import CorruptFileError
    from orchestrator.output.lock import OutputLocked
    from orchestrator.output.storage import StorageError
    from orchestrator.output.store import OutputStore
    from orchestrator.teacher.errors import TeacherError
    from orchestrator.teacher.local_cpu import LocalTeacherError
    from orchestrator.teacher.preflight import TeacherUnavailable
    from orchestrator.telemetry.ray_output import plain_streams

    # `ray job stop` sends SIGTERM: stop like Ctrl-C, so workers commit what they finished.
    signal.signal(signal.SIGTERM, _interrupt)
    plain_streams()  # no colour codes from Ray in logs that are not a terminal
    try:
        unseal_environ()  # secrets sent sealed by `mathsynth submit` (sealed_env.py)
        # --seeds becomes seeds.path, so the resolved config (run.json, the card) names them
        cfg, builtin = build_config(pipeline, deep_update(overrides, {"seeds": {"path": seeds}}))
        if dry_run is not None:
            return _dry_run(cfg, seeds, dry_run)
        OutputStore(out_dir).storage.check_writable()  # unusable --out: fail before starting
        summary = run_pipeline(cfg, builtin, seeds, out_dir, allow_config_change, progress,
                               json_events, retry_length_rejected)  # fmt: skip
    except CorruptFileError as err:
        raise fail(f"{err}; {err.hint}") from None
    except (ConfigError, MethodError, SeedError, FileNotFoundError, LocalTeacherError,
            StorageError, SealError, OutputLocked, CapacityError) as err:  # fmt: skip
        raise fail(str(err)) from None
    except FatalRunError as err:
        raise fail(f"run stopped: {err}", code=1) from None
    except (TeacherUnavailable, TeacherError) as err:  # the check before the run (preflight.py)
        raise fail(f"teacher check failed: {err}", code=1) from None
    except KeyboardInterrupt:
        console.print(Text(f"interrupted: committed work is in {out_dir}; run again to resume"))
        raise typer.Exit(130) from None
    if not json_events:  # --json: the summary was the last event
        print_run_summary(summary)
    if summary.get("stopped"):  # e.g. --max-cost: seeds are left for a later run (exit 3)
        console.print(summary["stopped"], highlight=False, markup=False)
        raise typer.Exit(3)
    unfinished = summary.get("seeds_failed", 0) + summary.get("seeds_not_run", 0)
    if unfinished:  # exit 1: a run that left seeds undone is not a success
        errors = ", ".join(f"{k}={v:g}" for k, v in summary.get("teacher_errors", {}).items())
        raise fail(
            f"{unfinished} of {summary['seeds_read']} seeds did not finish "
            f"({summary.get('seeds_failed', 0)} failed{f': {errors}' if errors else ''}); "
            "run the same command again to retry them", code=1,
        )  # fmt: skip
    return summary


@app.command()
def run(
    pipeline: Annotated[str, typer.Argument(help="pipeline file or built-in name")],
    seeds: Annotated[
        str | None, typer.Option(help="seed file, seeds/ name or HF dataset id")
    ] = None,
    out_dir: Annotated[str, typer.Option("--out", help=OUT_HELP)] = "out",
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL")] = None,
    model: Annotated[str | None, typer.Option(help="teacher model name")] = None,
    limit: Annotated[int | None, typer.Option(help="only the first N seeds")] = None,
    workers: Annotated[int | None, typer.Option(help="Ray generation actors")] = None,
    concurrency: Annotated[int | None, typer.Option(help="requests in flight per actor")] = None,
    method: Annotated[str | None, typer.Option(help="TinyGSM method: one-step|two-step")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="env var holding the API key")] = None,
    teacher: Annotated[
        str | None,
        typer.Option(help="teacher kind: openai | vllm (start vLLM replicas) | openai-batch"),
    ] = None,
    gpus: Annotated[
        int | None,
        typer.Option(help="--teacher vllm: GPUs to use (gpus // tensor_parallel_size replicas)"),
    ] = None,
    allow_config_change: Annotated[
        bool, typer.Option(help="keep rows written under another config instead of rebuilding")
    ] = False,
    progress: Annotated[bool, typer.Option(help="live progress display")] = True,
    json_events: Annotated[
        bool, typer.Option("--json", help="print one JSON progress event per line to stdout")
    ] = False,
    decontaminate: Annotated[
        bool | None, typer.Option(help="override decontamination.enabled of the pipeline")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="render prompts, estimate requests/tokens/cost; send nothing")
    ] = False,
    dry_run_seeds: Annotated[int, typer.Option(help="seeds rendered for --dry-run")] = 5,
    max_cost: Annotated[
        float | None,
        typer.Option(help="USD: stop sending new work before the teacher's spend passes this"),
    ] = None,
    reuse_replies: Annotated[
        list[str] | None,
        typer.Option(help="another output whose logged teacher replies are reused (repeatable)"),
    ] = None,
    retry_length_rejected: Annotated[
        bool, typer.Option(help="ask again for seeds rejected only for length (raise the budget)")
    ] = False,
) -> None:
    """Run a pipeline: seeds in, a verified dataset out (resumes if --out has data)."""
    overrides = {
        "teacher": {
            "base_url": base_url,
            "model": model,
            "api_key_env": api_key_env,
            "kind": teacher,
            "gpus": gpus,
        },
        "run": {
            "limit": limit,
            "workers": workers,
            "concurrency": concurrency,
            "max_cost_usd": max_cost,
            "reuse_replies": reuse_replies or None,
        },  # fmt: skip
        "tinygsm": {"method": method},
        "decontamination": {"enabled": decontaminate},
    }
    _execute(
        pipeline, overrides, seeds, out_dir, allow_config_change, progress,
        dry_run_seeds if dry_run else None, json_events=json_events,
        retry_length_rejected=retry_length_rejected,
    )  # fmt: skip


@app.command()
def demo(
    out_dir: Annotated[str, typer.Option("--out", help=OUT_HELP)] = "demo-out",
    limit: Annotated[int, typer.Option(help="seed problems to use")] = 8,
) -> None:
    """Offline demo: bundled seeds through TinyGSM with the built-in CPU teacher."""
    # Two-step suits a 135M model best: short replies (question variants, then one program
    # per question) that it follows more often than the long one-step format.
    overrides = {
        "run": {"limit": limit, "workers": 1, "concurrency": 1, "commit_every_seeds": 1},
        # Offline: the benchmark test sets come from the hub, so no decontamination here.
        "decontamination": {"enabled": False},
        "tinygsm": {
            "method": "two-step",
            "problems_per_seed": 2,
            "two_step_families": ["variants"],
            "sampling": {"max_tokens": 300, "temperature": 0.3},
            "program_sampling": {"max_tokens": 300, "temperature": 0.0},
        },
    }
    _execute("tinygsm", overrides, DEMO_SEEDS, out_dir, False, True)
    show(out_dir, rows=3)


# The other commands are plain functions in their own modules, registered here in the order
# ``mathsynth --help`` lists them.
app.command(name="show")(show)
app.command(name="stats")(stats)
app.command(name="repair")(repair)
app.command(name="mix")(mix)
app.command(name="push")(push)
app.command(name="submit")(submit)
app.command(name="watch")(watch)
app.command(name="pipelines")(pipelines)
app.command(name="init")(init)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
