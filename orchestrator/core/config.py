"""Typed pipeline configuration, validated at load.

A pipeline file (YAML) is read into ``PipelineConfig``; command-line flags and environment
variables are applied as overrides *before* validation, so every value is checked the same way.
Validation errors name the file and the line of the offending key. This module does not start
teachers, resolve seeds or run anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from orchestrator.core.seeds import SeedConfig
from orchestrator.core.strict import StrictModel
from orchestrator.methods.arithmetic.config import ArithmeticConfig
from orchestrator.methods.mumath.config import MuMathConfig
from orchestrator.methods.skywork.config import SkyworkConfig
from orchestrator.methods.tinygsm.config import TinyGSMConfig
from orchestrator.output.card_settings import CardSettings
from orchestrator.quality.decontam import DecontamSettings
from orchestrator.quality.format_filters import FormatSettings
from orchestrator.quality.near_dedup import NearDedupSettings
from orchestrator.sandbox import SandboxLimits
from orchestrator.teacher.settings import TeacherSettings


class FilterConfig(StrictModel):
    """TinyGSM's filters: short questions, questions without numbers, non-numeric answers."""

    min_question_words: int = Field(8, ge=0)
    require_number_in_question: bool = True
    max_abs_answer: float = Field(1e15, gt=0)


class DedupConfig(StrictModel):
    """Cluster-wide dedup of generated questions: exact (normalised text) then near (MinHash
    LSH). ``against``: earlier mathsynth output dirs whose rows count as already seen."""

    exact: bool = True
    near: NearDedupSettings = NearDedupSettings()
    against: list[str] = []


class RunConfig(StrictModel):
    workers: int = Field(2, ge=1, description="Ray generation actors (seed shards)")
    concurrency: int = Field(16, ge=1, description="teacher requests in flight per actor")
    sandbox_concurrency: int = Field(2, ge=1, description="programs executing at once per actor")
    # Chunks (orchestrator.engine.chunks): a worker commits each chunk it is handed at once.
    commit_every_seeds: int = Field(
        8, ge=1, description="seeds per chunk at first; chunks grow to chunk_target_s of work"
    )
    chunk_target_s: float = Field(5.0, gt=0, description="grow chunks while faster than this")
    max_chunk_seeds: int = Field(4096, ge=1, description="largest chunk")
    # The finalizer (orchestrator.engine.finalize) commits deduplicated rows by size or time.
    final_commit_rows: int = Field(20000, ge=1, description="rows per data shard, at most")
    final_commit_s: float = Field(10.0, gt=0, description="commit decided rows this often")
    dedup_actors: int | None = Field(None, description="ignored (dedup runs in the finalizer)")
    # The reply log (orchestrator.output.replies): every teacher reply kept under
    # _mathsynth/replies/ and reused, so no request is paid for twice.
    reply_log: bool = Field(True, description="log every teacher reply and reuse logged ones")
    reply_flush_s: float = Field(5.0, gt=0, description="object stores: upload replies this often")
    max_cost_usd: float | None = Field(
        None, gt=0, description="stop sending new work before the teacher's spend passes this"
    )
    reuse_replies: list[str] = Field(
        default_factory=list, description="other outputs whose logged replies are reused too"
    )
    worker_cpus: float = Field(1.0, gt=0)
    # Placement (orchestrator.engine.placement): workers ask for CPUs (never GPUs) plus these custom
    # resources, so nodes that do not offer them (teacher nodes) never host a worker.
    worker_resources: dict[str, float] = Field(
        default_factory=dict, description="custom Ray resources per worker, e.g. {worker: 1}"
    )
    spread_workers: bool = Field(True, description="Ray SPREAD: workers over as many nodes")
    limit: int | None = Field(None, ge=1, description="only the first N seeds")
    stop_after_failures: int = Field(
        8, ge=0, description="stop when the first N seeds all fail the same persistent way "
        "(orchestrator.engine.failure_stop); 0: never",
    )  # fmt: skip


class PipelineConfig(StrictModel):
    name: str
    description: str = ""
    kind: Literal["tinygsm", "skywork", "mumath_code", "arithmetic"] = "tinygsm"
    seeds: SeedConfig = SeedConfig()
    teacher: TeacherSettings | None = None
    # One section per pipeline method; only the section named by ``kind`` is used.
    tinygsm: TinyGSMConfig = TinyGSMConfig()
    skywork: SkyworkConfig = SkyworkConfig()
    mumath_code: MuMathConfig = MuMathConfig()
    arithmetic: ArithmeticConfig = ArithmeticConfig()
    filters: FilterConfig = FilterConfig()
    format: FormatSettings = FormatSettings()
    decontamination: DecontamSettings = DecontamSettings()
    dedup: DedupConfig = DedupConfig()
    sandbox: SandboxLimits = SandboxLimits()
    run: RunConfig = RunConfig()
    card: CardSettings = CardSettings()  # dataset card metadata; not in the fingerprint


class ConfigError(ValueError):
    """A pipeline file that does not validate; the message names file and line."""


def read_yaml(path: Path) -> tuple[dict[str, Any], yaml.Node | None]:
    """Parse ``path`` to a dict plus its node tree (kept for line numbers)."""
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {err.problem}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a pipeline file must be a mapping, not {type(data).__name__}")
    return data, node


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest key in ``loc`` present in the YAML node tree."""
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def deep_update(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``overrides`` (None values skipped) into a copy of ``base``."""
    out = dict(base)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict):
            # An override section only appears if it sets something (or the file has it).
            current = out.get(key)
            merged = deep_update(current if isinstance(current, dict) else {}, value)
            if merged or key in out:
                out[key] = merged
        else:
            out[key] = value
    return out


def validate_pipeline(
    data: dict[str, Any], source: Path | str, node: yaml.Node | None = None
) -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = tuple(e["loc"])
            line = _line_of(node, loc)
            where = f"{source}:{line}" if line else f"{source}"
            lines.append(f"{where}: {'.'.join(map(str, loc)) or '<root>'}: {e['msg']}")
        raise ConfigError("invalid pipeline configuration\n  " + "\n  ".join(lines)) from None


def load_pipeline(path: Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    data, node = read_yaml(path)
    return validate_pipeline(deep_update(data, overrides or {}), path, node)
