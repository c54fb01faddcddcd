"""``Method``: what a pipeline ``kind`` names, for built-in and user-written methods alike.

A method is a plain value: its ``name`` (also the key of its section in a pipeline file), the
pydantic model of that section (``config``), a directory of its own Jinja2 templates
(``prompts``), the function that turns a validated config into engine steps (``build_steps``),
and the types of the ``meta`` fields its rows carry (written as one typed parquet struct, so
every shard of a dataset has the same schema). ``orchestrator.methods.catalog`` finds methods
(built-in table, ``mathsynth.methods`` entry points, ``module:attr``); this module neither
finds nor runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.core.prompts import template_fields
from orchestrator.core.strict import StrictModel

if TYPE_CHECKING:
    from orchestrator.core.config import PipelineConfig
    from orchestrator.core.records import Record
    from orchestrator.core.sampling import SamplingParams
    from orchestrator.engine.steps import Step

RequestPlan = list[tuple[float, "SamplingParams"]]


class EmptySection(StrictModel):
    """The section of a method without settings: empty (or absent) in the pipeline file."""


def _no_requests(cfg: PipelineConfig) -> RequestPlan:
    return []


@dataclass(frozen=True)
class Method:
    """A generation method.

    - ``build_steps(cfg)``: the engine steps for one seed (``TeacherStep``, ``FilterStep``,
      ``ExecuteStep``, ...); ``method.section(cfg)`` is this method's validated section.
    - ``config``: the section's pydantic model (``StrictModel``: unknown keys are errors).
      Fields typed ``TemplateName`` name templates; they are resolved and checked at load.
    - ``prompts``: a directory searched for template names after the pipeline's
      ``prompt_dirs`` and before the built-in ``prompts/``.
    - ``meta``: row ``meta`` fields and their types (``str``, ``int``, ``float``, ``bool``,
      ``list[str]``, ... or a pyarrow type); other keys land in ``meta.extra`` as JSON.
    - ``needs_teacher``: False for methods that generate by program (no teacher is started).
    - ``template_names(cfg)``: the templates a config uses (for the resume fingerprint);
      default: every ``TemplateName`` field of the section.
    - ``request_plan(cfg)``: (requests per seed, sampling) per teacher step, for ``--dry-run``.
    - ``make_seeds(cfg)``: seeds of a method that makes its own when none are given.
    """

    name: str
    build_steps: Callable[[PipelineConfig], list[Step]]
    config: type[StrictModel] = EmptySection
    prompts: str | Path | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    needs_teacher: bool = True
    template_names: Callable[[PipelineConfig], list[str]] | None = None  # None: every one
    request_plan: Callable[[PipelineConfig], RequestPlan] = _no_requests
    make_seeds: Callable[[PipelineConfig], list[Record]] | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"method name {self.name!r} must be a Python identifier")
        if "extra" in self.meta:
            raise ValueError("meta field 'extra' is reserved (undeclared keys go there)")
        if self.template_names is None:  # frozen: set the default once, here
            object.__setattr__(self, "template_names", self._every_template)

    def _every_template(self, cfg: PipelineConfig) -> list[str]:
        return [ref for _, ref in template_fields(self.section(cfg))]

    def section(self, cfg: PipelineConfig) -> Any:
        """This method's section of ``cfg`` (an instance of ``config``)."""
        return getattr(cfg, self.name)

    def prompt_dir(self) -> Path | None:
        return Path(self.prompts) if self.prompts is not None else None
