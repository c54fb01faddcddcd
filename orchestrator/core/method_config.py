"""A pipeline's method inside its config: the method ``kind`` names, the config model carrying
its section, its templates read at load, and a config rebuilt from JSON in a worker.

``config_model(method)`` is ``PipelineConfig`` for the built-ins (their sections are fields of
it) and a subclass with one more section, named after the method, for the others (cached).
``resolve_templates`` reads every ``TemplateName`` field of the method's section (search:
``prompt_dirs``, the method's ``prompts``, the built-in ``prompts/``) into ``prompt_files``;
``config_from_json`` finds the method again from ``kind`` and ``python_path``, so a worker
imports the user's module itself and needs no template files. Errors name the pipeline file and
line (``orchestrator.core.config``). This module does not read YAML or run anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import Field, create_model

from orchestrator.core.config import PipelineConfig, invalid, where
from orchestrator.core.prompts import (
    TemplateError,
    TemplateSource,
    resolve_template,
    template_fields,
)

if TYPE_CHECKING:
    from orchestrator.methods.method import Method


def resolve_kind(data: dict[str, Any], source: Path | str, node: yaml.Node | None) -> Method:
    """The method ``kind`` names, or a ``ConfigError`` at the line of ``kind``."""
    from orchestrator.methods.catalog import MethodError, load_method

    kind = data.get("kind", "tinygsm")
    if not isinstance(kind, str):
        raise invalid([f"{where(source, node, ('kind',))}: must be a string"])
    paths = data.get("python_path")
    paths = [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else []
    try:
        method = load_method(kind, paths)
        config_model(method)
    except MethodError as err:
        raise invalid([f"{where(source, node, ('kind',))}: {err}"]) from None
    return method


_MODELS: dict[tuple[str, type], type[PipelineConfig]] = {}


def config_model(method: Method) -> type[PipelineConfig]:
    """``PipelineConfig`` with ``method``'s section (built-in sections are fields already)."""
    from orchestrator.methods.catalog import MethodError

    field = PipelineConfig.model_fields.get(method.name)
    if field is not None:
        if field.annotation is method.config:
            return PipelineConfig
        raise MethodError(f"method name {method.name!r} is taken by the {method.name}: section")
    key = (method.name, method.config)
    if key not in _MODELS:
        section = (method.config, Field(default_factory=method.config))
        _MODELS[key] = create_model(
            f"PipelineConfig_{method.name}", __base__=PipelineConfig, **{method.name: section}
        )  # type: ignore[call-overload]
    return _MODELS[key]


def resolve_templates(
    cfg: PipelineConfig, method: Method, base: Path, source: Path | str, node: yaml.Node | None
) -> dict[str, TemplateSource]:
    """Every template the method's section names, read (with includes) and checked."""
    errors = [
        f"{where(source, node, ('prompt_dirs', i))}: not a directory: {d}"
        for i, d in enumerate(cfg.prompt_dirs)
        if not Path(d).is_dir()
    ]
    if errors:
        raise invalid(errors)
    own = method.prompt_dir()
    search = [Path(d) for d in cfg.prompt_dirs] + ([own] if own is not None else [])
    files: dict[str, TemplateSource] = {}
    for loc, ref in template_fields(method.section(cfg), (method.name,)):
        if ref not in files:
            try:
                files[ref] = resolve_template(ref, search, base)
            except TemplateError as err:
                errors.append(f"{where(source, node, loc)}: {err}")
    if errors:
        raise invalid(errors)
    return files


def config_from_json(text: str) -> PipelineConfig:
    """A config sent as JSON (to a worker): its method is found again by ``kind``."""
    from orchestrator.methods.catalog import load_method

    data = json.loads(text)
    method = load_method(data.get("kind", "tinygsm"), data.get("python_path", []))
    return config_model(method).model_validate(data)
