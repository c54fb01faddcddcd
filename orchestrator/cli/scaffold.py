"""``mathsynth init NAME``: a new pipeline of your own, ready to run and to edit.

It creates the folder ``NAME`` with ``pipeline.yaml`` (``kind: <ident>_method:METHOD``,
``python_path: ["."]``), ``<ident>_method.py`` (a method written with ``orchestrator.api``:
teacher stages with ``prompt``/``parse`` hooks, question filters, typed ``meta``),
``prompts/question.j2`` and ``prompts/solve.j2``, and ``seeds.jsonl`` (four of the bundled demo
seeds). ``<ident>`` is NAME's last part made a Python identifier; it is also the method's name
and the key of its section. ``mathsynth run NAME/pipeline.yaml`` then runs it end to end (the
built-in CPU teacher when no URL or model is given). The files come from ``scaffold_files/``
next to this module. It refuses a folder that exists and is not empty; it runs nothing.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.output import fail, out
from orchestrator.core.config import PipelineConfig

FILES = Path(__file__).resolve().parent / "scaffold_files"


def identifier(name: str) -> str:
    """NAME's last part as a Python identifier that is not a pipeline-file key."""
    ident = re.sub(r"\W+", "_", Path(name).name).strip("_").lower() or "pipeline"
    if ident[0].isdigit():
        ident = f"p_{ident}"
    return f"{ident}_pipeline" if ident in PipelineConfig.model_fields else ident


def scaffold(folder: Path) -> list[Path]:
    """Write the files into ``folder`` (created); returns them."""
    ident = identifier(str(folder))
    module = f"{ident}_method"
    values = {"name": folder.name, "dir": str(folder), "ident": ident, "module": module}
    texts = {
        "pipeline.yaml": string.Template((FILES / "pipeline.yaml").read_text()).substitute(values),
        f"{module}.py": (FILES / "method.py")
        .read_text()
        .replace('METHOD_NAME = "my_method"', f'METHOD_NAME = "{ident}"'),
        "prompts/question.j2": (FILES / "prompts" / "question.j2").read_text(),
        "prompts/solve.j2": (FILES / "prompts" / "solve.j2").read_text(),
        "seeds.jsonl": (FILES / "seeds.jsonl").read_text(),
    }
    written = []
    for rel, text in texts.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def init(
    name: Annotated[str, typer.Argument(help="folder to create (its name names the pipeline)")],
) -> None:
    """Start a pipeline of your own: NAME/pipeline.yaml, a method, prompts and seeds."""
    folder = Path(name)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise fail(f"{folder} already exists and is not an empty folder")
    files = scaffold(folder)
    for path in files:
        out.print(f"  wrote {path}", highlight=False)
    out.print(
        f"\nnext: mathsynth run {folder / 'pipeline.yaml'} --out {folder.name}-out   "
        f"(built-in CPU teacher; --base-url/--model for yours)",
        highlight=False,
    )
