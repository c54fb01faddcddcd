"""mathsynth's public Python API: write a generation method, run a pipeline from a script.

A method is a ``Method``: a name, a pydantic model for its section of the pipeline file, a
directory of Jinja2 templates, and ``build_steps(cfg)`` returning engine steps built from

- ``TeacherStage`` subclasses (hooks ``prompt``/``variables`` and ``parse``; ``derive`` makes a
  child record with provenance) inside a ``TeacherStep``;
- an optional ``ExecuteStage`` (hooks ``program`` and ``judge``) inside an ``ExecuteStep``: the
  program runs in the sandbox;
- optional ``Filter``/``Map`` stages (hook ``filter``/``apply``) inside a ``FilterStep``, e.g.
  ``VerifyAgainstGold`` or the question filters.

Name the method in a pipeline file as ``kind: module:attr`` (``python_path`` or PYTHONPATH must
let Ray workers import the module), or install it with an entry point in the group
``mathsynth.methods``. ``run`` runs a pipeline like ``mathsynth run`` (it starts a local Ray on
127.0.0.1, or joins ``RAY_ADDRESS``) and returns the summary. See README "Write your own
pipeline". Nothing else in ``orchestrator`` is promised to stay stable; this module holds no
logic of its own beyond ``run``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.core.config import ConfigError, PipelineConfig, deep_update
from orchestrator.core.prompts import PromptTemplate, TemplateName
from orchestrator.core.records import Record, content_hash
from orchestrator.core.sampling import SamplingParams
from orchestrator.core.stage import Filter, Map
from orchestrator.core.strict import StrictModel
from orchestrator.engine.steps import (
    ExecuteStage,
    ExecuteStep,
    FilterStep,
    Rejects,
    Step,
    StepContext,
    TeacherStage,
    TeacherStep,
)
from orchestrator.methods.method import Method
from orchestrator.quality.filters import QuestionHasNumber, QuestionLength
from orchestrator.quality.verify import VerifyAgainstGold, answers_equal, extract_final_answer
from orchestrator.sandbox import ExecResult
from orchestrator.teacher.replies import Completion

__all__ = [
    "Completion", "ConfigError", "ExecResult", "ExecuteStage", "ExecuteStep", "Filter",
    "FilterStep", "Map", "Method", "PipelineConfig", "PromptTemplate", "QuestionHasNumber",
    "QuestionLength", "Record", "Rejects", "SamplingParams", "Step", "StepContext",
    "StrictModel", "TeacherStage", "TeacherStep", "TemplateName", "VerifyAgainstGold",
    "answers_equal", "content_hash", "extract_final_answer", "run",
]  # fmt: skip


def run(
    pipeline: str | Path | Mapping[str, Any],
    *,
    out: str | Path,
    seeds: str | Path | None = None,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    allow_config_change: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Run ``pipeline`` (a pipeline file, a built-in name, or the file's content as a dict)
    into ``out``; returns the run summary (also written to ``out/summary.json``).

    ``seeds`` overrides the file's ``seeds.path``; ``base_url``/``model`` choose the teacher
    (neither: the built-in CPU teacher); ``api_key`` defaults to the variable named by
    ``teacher.api_key_env``; ``overrides`` is merged into the file (same sections and keys).
    Bad input raises ``ConfigError``/``MethodError``/``SeedError``; a run that cannot go on
    raises ``FatalRunError``."""
    from orchestrator.cli.app import build_config, choose_teacher, run_pipeline

    changes = deep_update(
        dict(overrides or {}), {"teacher": {"base_url": base_url, "model": model}}
    )
    if isinstance(pipeline, Mapping):
        data = deep_update(dict(pipeline), changes)
        cfg, builtin = choose_teacher(data, Path("<pipeline dict>"))
    else:
        cfg, builtin = build_config(str(pipeline), changes)
    seeds_spec = str(seeds) if seeds is not None else None
    return run_pipeline(
        cfg, builtin, seeds_spec, str(out), allow_config_change, progress, api_key=api_key
    )
