"""Pipeline methods by name, the steps a config builds, and the config's fingerprint.

``METHODS`` maps a pipeline ``kind`` to its builder: an explicit table, not a registry filled by
import side effects. The fingerprint is a content hash of everything that changes what a run
would generate and none of what only changes how fast (workers, concurrency, URLs, timeouts),
in two parts: what the teacher saw (method section, templates, model) and what we did with its
replies (filters, decontamination, dedup, sandbox). A run into an output written under another
fingerprint rebuilds the dataset from the reply log (``orchestrator.engine.rebuild``).
This module does not run anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.core.config import PipelineConfig
from orchestrator.core.prompts import load_template
from orchestrator.core.records import Record, content_hash
from orchestrator.core.sampling import SamplingParams
from orchestrator.engine.steps import Step
from orchestrator.methods.arithmetic import pipeline as arithmetic
from orchestrator.methods.mumath import pipeline as mumath
from orchestrator.methods.skywork import pipeline as skywork
from orchestrator.methods.tinygsm import pipeline as tinygsm

RequestPlan = list[tuple[float, SamplingParams]]


@dataclass(frozen=True)
class Method:
    build_steps: Callable[[PipelineConfig], list[Step]]
    template_names: Callable[[PipelineConfig], list[str]]
    needs_teacher: bool = True
    # (requests per seed, sampling) for each teacher step, upper bounds: for --dry-run
    request_plan: Callable[[PipelineConfig], RequestPlan] = lambda cfg: []
    # Methods that make their own seeds (shard descriptors) when none are given.
    make_seeds: Callable[[PipelineConfig], list[Record]] | None = None


METHODS: dict[str, Method] = {
    "tinygsm": Method(tinygsm.build_steps, tinygsm.template_names, True, tinygsm.request_plan),
    "skywork": Method(skywork.build_steps, skywork.template_names, True, skywork.request_plan),
    "mumath_code": Method(mumath.build_steps, mumath.template_names, True, mumath.request_plan),
    "arithmetic": Method(
        arithmetic.build_steps,
        arithmetic.template_names,
        False,
        arithmetic.request_plan,
        arithmetic.make_seeds,
    ),
}


def method_of(cfg: PipelineConfig) -> Method:
    return METHODS[cfg.kind]


def build_steps(cfg: PipelineConfig) -> list[Step]:
    return method_of(cfg).build_steps(cfg)


def teacher_fingerprint(cfg: PipelineConfig) -> str:
    """What the teacher saw: the method and its section, the prompt templates, the model."""
    method = method_of(cfg)
    section = getattr(cfg, cfg.kind)
    return content_hash(
        cfg.kind,
        section.model_dump() if section is not None else None,
        {name: load_template(name).hash for name in method.template_names(cfg)},
        cfg.teacher.model if cfg.teacher is not None else None,
    )


def processing_fingerprint(cfg: PipelineConfig) -> str:
    """What we did with the replies: filters, decontamination, dedup, sandbox limits."""
    return content_hash(
        cfg.filters.model_dump(),
        cfg.format.model_dump(),
        cfg.decontamination.model_dump(),
        cfg.dedup.model_dump(exclude={"against"}),
        cfg.sandbox.model_dump(exclude={"use_bwrap"}),
    )


def fingerprint(cfg: PipelineConfig) -> str:
    """Both of the above: what a run would generate (none of what only changes how fast)."""
    return content_hash(teacher_fingerprint(cfg), processing_fingerprint(cfg))
