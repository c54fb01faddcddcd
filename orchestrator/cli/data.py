"""The ``mathsynth`` dataset commands: ``show``, ``stats``, ``repair``, ``mix``, ``push`` and
``pipelines``.

Plain functions with typer annotations: they read an output dataset (its rows, the teacher
replies behind a row, its funnel, its plots), move its unreadable files to quarantine, blend two
datasets, publish one to the Hugging Face Hub, or list the built-in pipeline files. Rows and
reasons are printed as data, never as rich markup (teacher text holds brackets). A directory
that is not a mathsynth output, or holds an unreadable file, is an error (exit 2) naming it.
``orchestrator.cli.app`` registers them on
its typer app; this module does not create or touch the app (importing it registers nothing),
and it runs no pipeline and talks to no cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.output import fail, out, print_summary
from orchestrator.core.config import read_yaml
from orchestrator.core.resources import builtin_pipelines

__all__ = ["mix", "pipelines", "push", "repair", "show", "stats"]


def _output_store(out_dir: str) -> Any:
    """The ``OutputStore`` at ``out_dir``, or exit 2 when no mathsynth run wrote there."""
    from orchestrator.output.storage import StorageError
    from orchestrator.output.store import OutputStore

    try:
        store = OutputStore(out_dir)
    except StorageError as err:
        raise fail(str(err)) from None
    if not store.is_output():
        raise fail(f"{out_dir}: not a mathsynth output directory (no data/)")
    return store


def show(
    out_dir: Annotated[str, typer.Argument(help="a mathsynth output directory or URL")],
    rows: Annotated[int, typer.Option(help="rows to print")] = 5,
    row_id: Annotated[
        str | None, typer.Option("--id", help="print this one row (any split) in full")
    ] = None,
    raw: Annotated[
        bool, typer.Option(help="with --id: also the exact teacher replies behind the row")
    ] = False,
) -> None:
    """Print a dataset's size and a few rows, or one row in full with --id."""
    import datasets

    from orchestrator.output.storage import CorruptFileError

    store = _output_store(out_dir)
    if row_id is not None:
        show_row(store, row_id, raw)
        return
    committed = store.committed_files()
    try:
        for file in committed:  # a damaged footer is named here, not deep inside `datasets`
            store.storage.read_schema(file)
    except CorruptFileError as err:
        raise fail(f"{err}; {err.hint}") from None
    if not committed:
        out.print(Text(f"{out_dir}: no rows were accepted (see summary.json and rejected/)"))
        return
    datasets.disable_progress_bars()  # the rows are the output, not the loader's progress
    ds = datasets.load_dataset("parquet", data_files=[store.uri(f) for f in committed],
                               split="train")  # fmt: skip
    out.print(Text.assemble((out_dir, "bold"), f": {ds.num_rows} rows, columns {ds.column_names}"))
    for row in ds.select(range(min(rows, ds.num_rows))):
        out.print(Text.assemble("\n", ("Q: ", "bold"), str(row["question"])), soft_wrap=True)
        out.print(Text.assemble(("answer: ", "bold"), str(row["answer"])))
        body = row["code"] or row.get("solution") or ""
        out.print(Text(body), highlight=False, soft_wrap=True)


def show_row(store: Any, row_id: str, raw: bool) -> None:
    """One row, every field, as data (no markup); with ``raw`` its logged teacher replies."""
    import json

    from orchestrator.output.provenance import find_row, replies_of

    found = find_row(store, row_id)
    if found is None:
        raise fail(f"{store.url}: no row with id {row_id!r} (data, rejected or side splits)")
    split, row = found
    out.print(f"{row_id} ({split})", markup=False, highlight=False)
    out.print(json.dumps(row, indent=2, ensure_ascii=False, default=str), markup=False,
              highlight=False, soft_wrap=True)  # fmt: skip
    if not raw:
        return
    replies = replies_of(store, row)
    if not replies:
        out.print("no logged reply for this row (a run without the reply log?)", markup=False)
    for n, reply in enumerate(replies, 1):
        usage = f"{reply['prompt_tokens']} prompt + {reply['completion_tokens']} completion tokens"
        out.print(
            f"\n--- reply {n}/{len(replies)} {reply['key']}: model {reply['model']}, "
            f"finish_reason {reply['finish_reason']}, {usage}, attempts {reply['attempts']}",
            markup=False, highlight=False,
        )  # fmt: skip
        out.print(reply["text"], markup=False, highlight=False, soft_wrap=True)


def stats(
    out_dir: Annotated[str, typer.Argument(help="a mathsynth output directory or URL")],
    reason: Annotated[str | None, typer.Option(help="show dropped rows with this reason")] = None,
    rows: Annotated[int, typer.Option(help="rows to show with --reason")] = 5,
    plot: Annotated[
        bool, typer.Option("--plot", help="write plots/*.png and the card in DIR; print paths")
    ] = False,
) -> None:
    """The funnel of DIR over all its runs: seeds by outcome, rows kept, drops by reason."""
    from orchestrator.output.stats import funnel, rejected_rows
    from orchestrator.output.storage import CorruptFileError

    store = _output_store(out_dir)
    try:
        info = funnel(out_dir)
        found = rejected_rows(out_dir, reason, rows) if reason else []
    except CorruptFileError as err:
        raise fail(f"{err}; {err.hint}") from None
    table = Table("stage", "reason", "dropped", title=Text(f"{out_dir}: funnel"))
    for stage, reasons in info["dropped_by_stage"].items():
        for why, n in reasons.items():
            table.add_row(Text(stage), Text(why), str(n))
    out.print(
        Text(f"seeds: {info['seeds']}  rows kept: {info['rows']}  dropped: {info['dropped']}")
    )
    out.print(table)
    for row in found:
        detail = f" [{row['reject_detail']}]" if row["reject_detail"] else ""
        out.print(f"- {row['reject_reason']}{detail}: {row['question'][:200]}", markup=False)
    if plot:
        from orchestrator.output.card import write_card

        for path in write_card(store).values():
            out.print(
                store.uri(store.storage.path(path)), markup=False, highlight=False, soft_wrap=True
            )


def repair(
    out_dir: Annotated[str, typer.Argument(help="a mathsynth output directory or URL")],
    dry_run: Annotated[bool, typer.Option(help="only list the unreadable files")] = False,
) -> None:
    """Move DIR's unreadable files (and their commit's other files) to _mathsynth/quarantine/.

    The next run asks the teacher again for the seeds they recorded."""
    from orchestrator.output.integrity import quarantine, scan

    store = _output_store(out_dir)
    problems = scan(store)
    if not problems:
        out.print(Text(f"{out_dir}: every committed file reads back whole; nothing to do"))
        return
    for problem in problems:
        out.print(Text(f"unreadable: {problem}"))
    if dry_run:
        out.print("--dry-run: nothing moved")
        return
    moved = quarantine(store, problems)
    for src, dst in moved:
        out.print(Text(f"moved {src} -> {dst}"))
    out.print(
        Text(f"{len(moved)} file(s) quarantined; run the same `mathsynth run` command again to "
             "re-run the seeds they recorded")
    )  # fmt: skip


def mix(
    arith_dir: Annotated[
        str,
        typer.Argument(
            metavar="ARITH_DIR",
            help="set to blend in: a mathsynth output dir (e.g. arithmetic), "
            "a parquet/jsonl file or an HF id",
        ),
    ],
    base: Annotated[
        str,
        typer.Argument(metavar="BASE", help="instruction-tuning data: a dir, a file or an HF id"),
    ],
    ratio: Annotated[float, typer.Option(help="share of the output taken by ARITH_DIR, in [0, 1)")],
    out_dir: Annotated[Path, typer.Option("--out", help="output dataset directory")],
    seed: Annotated[int, typer.Option(help="sampling and shuffling seed")] = 0,
    split: Annotated[str, typer.Option(help="split of HF dataset inputs")] = "train",
) -> None:
    """Blend ARITH_DIR into BASE at --ratio; rows keep a `source` column (parquet, `datasets`)."""
    from orchestrator.output.mix import MixError
    from orchestrator.output.mix import mix as run_mix

    try:
        summary = run_mix(arith_dir, base, ratio, out_dir, seed=seed, split=split)
    except MixError as err:
        raise fail(str(err)) from None
    print_summary(summary, title="mix")


def push(
    out_dir: Annotated[str, typer.Argument(help="a mathsynth output directory or URL")],
    repo_id: Annotated[str, typer.Argument(help="dataset repo on the Hub, e.g. me/my-math")],
    private: Annotated[bool, typer.Option(help="create the repo private")] = False,
    license: Annotated[
        str | None, typer.Option(help="license id for the card (default: card.license)")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="print the upload plan; upload nothing")] = False,
) -> None:
    """Publish DIR to the Hugging Face Hub: card, plots, data, rejected and verifier splits."""
    from huggingface_hub.errors import HfHubHTTPError

    from orchestrator.output.push import PushError, upload_plan
    from orchestrator.output.push import push as run_push
    from orchestrator.output.storage import StorageError
    from orchestrator.output.store import OutputStore

    try:
        if dry_run:
            plan = upload_plan(OutputStore(out_dir))
            paths, left_out = plan.paths, plan.left_out
        else:
            result = run_push(out_dir, repo_id, private=private or None, license=license)
            paths, left_out = result.uploaded, result.left_out
    except (PushError, StorageError) as err:
        raise fail(str(err)) from None
    except (HfHubHTTPError, OSError) as err:  # the Hub refused, or could not be reached
        raise fail(f"push to {repo_id} failed: {err}", code=1) from None
    for path in paths:
        out.print(path, markup=False, highlight=False, soft_wrap=True)
    for path, why in left_out.items():
        out.print(f"left out: {path}: {why}", markup=False, highlight=False, soft_wrap=True)
    if not dry_run:
        out.print(f"pushed {len(paths)} files ({len(result.deleted)} stale removed): "
                  f"{result.commit_url}", markup=False, highlight=False, soft_wrap=True)  # fmt: skip


def pipelines() -> None:
    """List the built-in pipelines."""
    table = Table("name", "file", "description")
    for name, path in builtin_pipelines().items():
        data, _ = read_yaml(path)
        table.add_row(name, str(path), str(data.get("description", "")).strip())
    out.print(table)
