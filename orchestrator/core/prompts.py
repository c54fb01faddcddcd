"""Prompt templates: Jinja2 files under ``prompts/<pipeline>/``, loaded by name.

A template name is its path relative to ``prompts/`` without the ``.j2`` suffix, e.g.
``tinygsm/one_step``. Each template has a content hash recorded on every row it produced, so a
changed prompt is visible in the data and in resume fingerprints. Templates render the *user*
message; an optional ``{% block system %}`` is not used — keep system text in the file too.
This module does not call teachers or choose which template a pipeline uses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from orchestrator.core.resources import data_dir


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    source: str
    hash: str
    _template: jinja2.Template

    def render(self, **variables: Any) -> str:
        return self._template.render(**variables).strip() + "\n"


@lru_cache(maxsize=8)
def _environment(root: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def load_template(name: str, root: Path | None = None) -> PromptTemplate:
    """Load ``<root>/<name>.j2`` (root defaults to the built-in ``prompts/`` folder)."""
    base = Path(root) if root is not None else data_dir("prompts")
    file = base / f"{name}.j2"
    if not file.is_file():
        raise FileNotFoundError(f"prompt template {name!r} not found at {file}")
    source = file.read_text(encoding="utf-8")
    env = _environment(str(base))
    try:
        template = env.get_template(f"{name}.j2")
    except jinja2.TemplateSyntaxError as err:
        raise ValueError(f"{file}:{err.lineno}: template syntax error: {err.message}") from err
    digest = hashlib.sha256()
    for part in _sources(env, f"{name}.j2", base, seen=set()):
        digest.update(part.encode("utf-8"))
    return PromptTemplate(
        name=name, source=source, hash=digest.hexdigest()[:16], _template=template
    )


def _sources(env: jinja2.Environment, name: str, base: Path, seen: set[str]) -> list[str]:
    """The text of ``name`` and of every file it includes/extends, recursively: a change to a
    few-shot file changes the template's hash."""
    if name in seen:
        return []
    seen.add(name)
    text = (base / name).read_text(encoding="utf-8")
    parts = [name, text]
    for ref in jinja2.meta.find_referenced_templates(env.parse(text)):
        if ref is not None:
            parts += _sources(env, ref, base, seen)
    return parts
