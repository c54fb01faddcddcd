"""Locate the data folders that ship with mathsynth: ``pipelines/``, ``prompts/``, ``seeds/``.

From a clone (or an editable install) they sit at the repository root beside ``orchestrator/``;
in an installed wheel they are package data under ``orchestrator/_data/``. This module only
finds paths; it does not parse anything.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]  # orchestrator/
KINDS = ("pipelines", "prompts", "seeds")


def data_dir(kind: str) -> Path:
    """The folder holding built-in ``kind`` files (one of ``KINDS``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r}; expected one of {KINDS}")
    for candidate in (_PACKAGE / "_data" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"mathsynth's built-in {kind}/ folder is missing (looked in {_PACKAGE / '_data'} and "
        f"{_PACKAGE.parent}); reinstall the package"
    )


def builtin_pipelines() -> dict[str, Path]:
    """Built-in pipeline files by name (file stem)."""
    return {p.stem: p for p in sorted(data_dir("pipelines").glob("*.yaml"))}


def resolve_pipeline(spec: str) -> Path:
    """A pipeline given as a path (``pipelines/tinygsm.yaml``) or a built-in name (``tinygsm``)."""
    path = Path(spec)
    if path.is_file():
        return path
    builtin = builtin_pipelines()
    if spec in builtin:
        return builtin[spec]
    if path.name.endswith((".yaml", ".yml")) and path.stem in builtin:
        return builtin[path.stem]
    names = ", ".join(builtin) or "none"
    raise FileNotFoundError(f"no pipeline file {spec!r} (built-in pipelines: {names})")


def resolve_seed_file(spec: str) -> Path | None:
    """A seed file path, or a file in the built-in ``seeds/`` folder; None if neither exists."""
    path = Path(spec)
    if path.is_file():
        return path
    builtin = data_dir("seeds") / spec
    if builtin.is_file():
        return builtin
    if path.parts and path.parts[0] == "seeds":
        inner = data_dir("seeds").joinpath(*path.parts[1:])
        if inner.is_file():
            return inner
    return None
