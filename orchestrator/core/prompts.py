"""Prompt templates: Jinja2 files named in pipeline files, resolved once at load.

A template reference in a pipeline file (a config field typed ``TemplateName``) is either

- a **name**, ``tinygsm/one_step``: the file ``<dir>/<name>.j2`` in the first of the search
  directories that has it: the pipeline's ``prompt_dirs``, the method's own ``prompts``
  directory, then the built-in ``prompts/`` folder; or
- a **path**: one ending in ``.j2`` (relative to the pipeline file's directory) or any
  absolute path.

``resolve_template`` reads the file and every file it includes or extends (literal names,
looked up in the file's own directory and then the search directories) into a
``TemplateSource``; the loader stores these in the config, so workers on other nodes render
the same text without the files. The hash over those texts is recorded on every row and in the
resume fingerprint. Templates render the *user* message. Errors (missing file, syntax error)
raise ``TemplateError`` naming the file (and line). This module does not call teachers or choose
which template a pipeline uses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jinja2
import jinja2.meta
from pydantic import BaseModel

from orchestrator.core.resources import data_dir
from orchestrator.core.strict import StrictModel


class TemplateError(ValueError):
    """A template that cannot be found or parsed; the message names the file (and line)."""


class _TemplateField:
    """Marker in the metadata of config fields that name a prompt template."""


TEMPLATE_FIELD = _TemplateField()
TemplateName = Annotated[str, TEMPLATE_FIELD]


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    source: str
    hash: str
    _template: jinja2.Template

    def render(self, **variables: Any) -> str:
        return self._template.render(**variables).strip() + "\n"


class TemplateSource(StrictModel):
    """A resolved template: ``files`` maps loader names to text, the entry file first."""

    name: str  # the reference as written (recorded on rows as ``template``)
    entry: str
    files: dict[str, str]

    @property
    def hash(self) -> str:
        digest = hashlib.sha256()
        for loader_name, text in self.files.items():
            digest.update(loader_name.encode("utf-8"))
            digest.update(text.encode("utf-8"))
        return digest.hexdigest()[:16]

    def load(self) -> PromptTemplate:
        key = (self.name, self.hash)
        if key not in _LOADED:
            env = _environment(jinja2.DictLoader(self.files))
            template = env.get_template(self.entry)
            _LOADED[key] = PromptTemplate(self.name, self.files[self.entry], self.hash, template)
        return _LOADED[key]


_LOADED: dict[tuple[str, str], PromptTemplate] = {}


def _environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    return jinja2.Environment(
        loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        autoescape=False,
    )  # fmt: skip


def builtin_prompts() -> Path:
    return data_dir("prompts")


def resolve_template(
    ref: str, search: Sequence[Path] = (), base_dir: Path | None = None
) -> TemplateSource:
    """Find ``ref`` (a name, or a path: absolute, or ending ``.j2`` and relative to
    ``base_dir``) and read it with everything it includes. ``search``: directories before the built-in ``prompts/``."""
    dirs = [*search, builtin_prompts()]
    given = Path(ref).expanduser()
    if ref.endswith(".j2") or given.is_absolute():
        path = given if given.is_absolute() else (base_dir or Path.cwd()) / given
        if not path.is_file():
            raise TemplateError(f"prompt template file {ref!r} not found ({path})")
        roots, entry = [path.parent, *dirs], path.name
    elif ".." in given.parts:
        raise TemplateError(f"template name {ref!r} leaves its folder: give a path ending .j2")
    else:
        roots, entry = dirs, f"{ref}.j2"
        if not any((d / entry).is_file() for d in dirs):
            looked = ", ".join(str(d) for d in dirs)
            raise TemplateError(f"prompt template {ref!r} not found: no {entry} in {looked}")
    env = _environment(jinja2.FileSystemLoader([str(r) for r in roots]))
    files: dict[str, str] = {}
    _collect(env, entry, files)
    return TemplateSource(name=ref, entry=entry, files=files)


def _collect(env: jinja2.Environment, name: str, files: dict[str, str]) -> None:
    """The text of ``name`` and of every file it includes/extends, depth first: a change to a
    few-shot file changes the template's hash."""
    if name in files:
        return
    assert env.loader is not None
    try:
        text, filename, _ = env.loader.get_source(env, name)
    except jinja2.TemplateNotFound:
        raise TemplateError(f"prompt template file {name!r} (included) not found") from None
    files[name] = text
    try:
        tree = env.parse(text, name, filename)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(
            f"{filename}:{err.lineno}: template syntax error: {err.message}"
        ) from None
    for ref in jinja2.meta.find_referenced_templates(tree):
        if ref is not None:
            _collect(env, ref, files)


def load_template(name: str, root: Path | None = None) -> PromptTemplate:
    """Load ``<root>/<name>.j2`` (root defaults to the built-in ``prompts/`` folder)."""
    return resolve_template(name, [Path(root)] if root is not None else []).load()


def template_fields(
    model: BaseModel, loc: tuple[Any, ...] = ()
) -> list[tuple[tuple[Any, ...], str]]:
    """``(location, reference)`` of every ``TemplateName`` field in ``model``, nested models
    included, in field order."""
    found: list[tuple[tuple[Any, ...], str]] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if TEMPLATE_FIELD in info.metadata and isinstance(value, str):
            found.append(((*loc, name), value))
        elif isinstance(value, BaseModel):
            found += template_fields(value, (*loc, name))
    return found
