"""Finding the ``Method`` a pipeline ``kind`` names, the steps a config builds, and the config's
fingerprint.

``kind`` is looked up, in this order, in ``BUILTINS`` (an explicit table of ``module:attr``
specs), among the ``mathsynth.methods`` entry points of installed packages
(``importlib.metadata``; the entry point's name is the kind), and finally as a
``module:attr`` spec imported after putting the pipeline's ``python_path`` directories first on
``sys.path``. Built-ins go through the same import as user specs; nothing is registered by
import side effects. ``load_method`` raises ``MethodError`` with a one-line reason.

The fingerprint is a content hash of everything that changes what a run would generate and
none of what only changes how fast (workers, concurrency, URLs, timeouts), in two parts: what
the teacher saw (the method and its section, the hashes of the templates it uses, the model)
and what we did with its replies (filters, decontamination, dedup, sandbox limits, the row
schema). A run into an output written under another fingerprint rebuilds the dataset from the
reply log (``orchestrator.engine.rebuild``). This module does not run anything.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from functools import lru_cache
from importlib.metadata import entry_points

from orchestrator.core.config import PipelineConfig
from orchestrator.core.records import content_hash
from orchestrator.engine.steps import Step
from orchestrator.methods.method import Method
from orchestrator.output.rows import RowSchema

ENTRY_POINT_GROUP = "mathsynth.methods"
BUILTINS: dict[str, str] = {
    "tinygsm": "orchestrator.methods.tinygsm.pipeline:METHOD",
    "skywork": "orchestrator.methods.skywork.pipeline:METHOD",
    "mumath_code": "orchestrator.methods.mumath.pipeline:METHOD",
    "arithmetic": "orchestrator.methods.arithmetic.pipeline:METHOD",
}


class MethodError(ValueError):
    """A ``kind`` that names no usable method; the message says why in one line."""


def installed_methods() -> dict[str, str]:
    """Entry-point name -> ``module:attr`` of every installed ``mathsynth.methods`` method."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_method(kind: str, python_path: Sequence[str] = ()) -> Method:
    """The method ``kind`` names (see module docstring)."""
    return _load(kind, tuple(python_path))


@lru_cache(maxsize=64)
def _load(kind: str, python_path: tuple[str, ...]) -> Method:
    if kind in BUILTINS:
        return _import(BUILTINS[kind], kind)
    installed = installed_methods()
    if kind in installed:
        method = _import(installed[kind], kind)
        if method.name != kind:
            raise MethodError(
                f"entry point {kind!r} ({installed[kind]}) is a method named {method.name!r}; "
                "the entry point's name must be the method's name"
            )
        return method
    if ":" in kind:
        for folder in reversed(python_path):  # relative ones: to this process's directory
            absolute = os.path.abspath(folder)
            if absolute not in sys.path:
                sys.path.insert(0, absolute)
        return _import(kind, kind)
    known = ", ".join([*BUILTINS, *installed])
    raise MethodError(
        f"unknown method {kind!r} (known: {known}; or give a module:attr of your own)"
    )


def _import(spec: str, kind: str) -> Method:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            raise MethodError(
                f"cannot import module {module_name!r} for kind {kind!r}: put its directory in "
                "the pipeline's python_path or on PYTHONPATH, or install its package"
            ) from None
        raise MethodError(f"importing {module_name!r}: {_where(err)}{err}") from None
    except Exception as err:  # the user's module failed while importing: say where
        raise MethodError(f"importing {module_name!r}: {_where(err)}{err}") from None
    method = getattr(module, attr, None) if attr else None
    if not isinstance(method, Method):
        what = "nothing" if method is None else type(method).__name__
        raise MethodError(f"{spec!r} is {what}, not a mathsynth Method (module:attr)")
    return method


def _where(err: BaseException) -> str:
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}:{err.lineno}: "
    frames = traceback.extract_tb(err.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}: {type(err).__name__}: " if frames else ""


def method_of(cfg: PipelineConfig) -> Method:
    return load_method(cfg.kind, cfg.python_path)


def build_steps(cfg: PipelineConfig) -> list[Step]:
    return method_of(cfg).build_steps(cfg)


def row_schema(cfg: PipelineConfig) -> RowSchema:
    """The parquet schema of this config's rows: the method's typed ``meta`` fields."""
    return RowSchema(method_of(cfg).meta)


def template_names(cfg: PipelineConfig) -> list[str]:
    names = method_of(cfg).template_names
    assert names is not None  # Method sets its default
    return names(cfg)


def teacher_fingerprint(cfg: PipelineConfig) -> str:
    """What the teacher saw: the method and its section, the prompt templates, the model."""
    method = method_of(cfg)
    return content_hash(
        method.name,
        method.section(cfg).model_dump(),
        {name: cfg.template(name).hash for name in template_names(cfg)},
        cfg.teacher.model if cfg.teacher is not None else None,
    )


def processing_fingerprint(cfg: PipelineConfig) -> str:
    """What we did with the replies: filters, decontamination, dedup, sandbox limits, and the
    row schema the rows are written in."""
    return content_hash(
        cfg.filters.model_dump(),
        cfg.format.model_dump(),
        cfg.decontamination.model_dump(),
        cfg.dedup.model_dump(exclude={"against"}),
        cfg.sandbox.model_dump(exclude={"use_bwrap"}),
        row_schema(cfg).fingerprint(),
    )


def fingerprint(cfg: PipelineConfig) -> str:
    """Both of the above: what a run would generate (none of what only changes how fast)."""
    return content_hash(teacher_fingerprint(cfg), processing_fingerprint(cfg))
