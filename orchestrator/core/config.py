"""Typed pipeline configuration, validated at load.

A pipeline file (YAML) is read into ``PipelineConfig``; command-line flags and environment
variables are applied as overrides *before* validation, so every value is checked the same way.
``kind`` names the method (``orchestrator.methods.catalog``: built-in, entry point or
``module:attr``); a method outside the built-ins adds its own section, named after it, to the
model (``orchestrator.core.method_config``). Template references (``TemplateName`` fields) are resolved at load against
``prompt_dirs``, the method's prompts and the built-in ``prompts/``, and their text is kept in
``prompt_files`` so workers need no template files. Relative paths in a pipeline file
(``prompt_dirs``, ``python_path``, template ``.j2`` paths, ``seeds.path`` when the file has it)
are resolved against the file's directory. Errors name the file and the line of the offending
key. This module does not start teachers, resolve seeds or run anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from orchestrator.core.prompts import PromptTemplate, TemplateSource, resolve_template
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
    stop_after_empty_seeds: int = Field(
        50, ge=0, description="stop when the first N finished seeds were all rejected (a teacher "
        "that refuses or ignores the format: no row at all) before any was accepted; 0: never",
    )  # fmt: skip


class PipelineConfig(StrictModel):
    name: str
    description: str = ""
    kind: str = Field("tinygsm", description="a built-in method, an installed one, or module:attr")
    python_path: list[str] = Field(
        default_factory=list, description="directories searched first for kind: module:attr"
    )
    prompt_dirs: list[str] = Field(
        default_factory=list, description="directories searched first for template names"
    )
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
    # Filled at load (never in a pipeline file): every template the method names, with its text.
    prompt_files: dict[str, TemplateSource] = Field(default_factory=dict)

    def template(self, ref: str) -> PromptTemplate:
        """The template ``ref`` as resolved at load (a config not made by the loader resolves
        built-in names on the spot)."""
        source = self.prompt_files.get(ref)
        return (source or resolve_template(ref)).load()


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


def where(source: Path | str, node: yaml.Node | None, loc: tuple[Any, ...]) -> str:
    line = _line_of(node, loc)
    where = f"{source}:{line}" if line else f"{source}"
    return f"{where}: {'.'.join(map(str, loc)) or '<root>'}"


def invalid(lines: list[str]) -> ConfigError:
    return ConfigError("invalid pipeline configuration\n  " + "\n  ".join(lines))


def validate_pipeline(
    data: dict[str, Any], source: Path | str, node: yaml.Node | None = None
) -> PipelineConfig:
    from orchestrator.core.method_config import config_model, resolve_kind, resolve_templates

    base = base_dir(source)
    if "prompt_files" in data:
        at = where(source, node, ("prompt_files",))
        raise invalid([f"{at}: filled by mathsynth at load; do not set it"])
    data = resolve_paths(data, base)
    method = resolve_kind(data, source, node)
    try:
        cfg = config_model(method).model_validate(data)
    except ValidationError as err:
        raise invalid(
            [f"{where(source, node, tuple(e['loc']))}: {e['msg']}" for e in err.errors()]
        ) from None
    cfg.prompt_files = resolve_templates(cfg, method, base, source, node)
    return cfg


def load_pipeline(path: Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    data, node = read_yaml(path)
    return validate_pipeline(deep_update(data, overrides or {}), path, node)


def base_dir(source: Path | str) -> Path:
    """Where relative paths of a pipeline are resolved: its file's directory (else the cwd)."""
    return Path(source).parent.resolve() if Path(source).is_file() else Path.cwd()


def resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``prompt_dirs`` and ``python_path`` entries resolved against ``base`` (the pipeline
    file's directory), and ``seeds.path`` too when it names a file there."""
    out = dict(data)
    if isinstance(out.get("prompt_dirs"), list):
        out["prompt_dirs"] = [_absolute(p, base) if isinstance(p, str) else p
                              for p in out["prompt_dirs"]]  # fmt: skip
    if isinstance(out.get("python_path"), list):
        out["python_path"] = [_from_cwd(p, base) if isinstance(p, str) else p
                              for p in out["python_path"]]  # fmt: skip
    seeds = out.get("seeds")
    if isinstance(seeds, dict) and isinstance(seeds.get("path"), str):
        path = Path(seeds["path"]).expanduser()
        if not path.is_absolute() and (base / path).is_file():
            out["seeds"] = {**seeds, "path": str((base / path).resolve())}
    return out


def _absolute(path: str, base: Path) -> str:
    p = Path(path).expanduser()
    return str((p if p.is_absolute() else base / p).resolve())


def _from_cwd(path: str, base: Path) -> str:
    """A ``python_path`` entry relative to the current directory when it lies inside it (Ray
    workers run in the driver's directory: locally the same one, in a Ray job the job's
    shipped ``working_dir``), else absolute."""
    absolute = Path(_absolute(path, base))
    cwd = Path.cwd().resolve()
    return str(absolute.relative_to(cwd)) if absolute.is_relative_to(cwd) else str(absolute)
