"""Terminal output shared by the ``mathsynth`` commands (``orchestrator.cli.app``, ``cli_data``,
``cli_cluster``).

It holds the two rich consoles (``console``: status and errors on stderr; ``out``: results on
stdout), ``fail`` (print an error, give the ``typer.Exit`` to raise), ``print_summary`` (a
key/value dict as a table) and ``print_run_summary`` (a run's summary, grouped for people:
``orchestrator.telemetry.summary_table``). It defines no command and reads no config; the commands and the
typer app live in ``orchestrator.cli.app``.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

__all__ = ["console", "fail", "out", "print_run_summary", "print_summary"]

console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error on stderr; returns the ``typer.Exit`` to raise."""
    # escaped: messages hold brackets that are not markup, e.g. pip install 'mathsynth[vllm]'
    # one line however long (soft_wrap): logs and grep see the whole message
    console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def print_summary(summary: dict[str, Any], title: str = "run summary") -> None:
    """``summary`` as a two-column table on stdout (nested dicts as ``k=v`` lists)."""
    table = Table(title=title, show_header=False)
    for key, value in summary.items():
        if isinstance(value, dict):
            value = (
                ", ".join(f"{k}={int(v) if isinstance(v, float) else v}" for k, v in value.items())
                or "-"
            )
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        table.add_row(Text(key), Text(str(value)))  # data (error messages hold brackets)
    out.print(table)


def print_run_summary(summary: dict[str, Any]) -> None:
    """A run's summary (``summary.json``) as a grouped table on stdout."""
    from orchestrator.telemetry.summary_table import summary_table

    out.print(summary_table(summary))
