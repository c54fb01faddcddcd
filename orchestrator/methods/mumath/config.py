"""The ``mumath_code:`` section of a pipeline file. Validation only; see ``mumath.pipeline``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestrator.core.prompts import TemplateName
from orchestrator.core.sampling import SamplingParams
from orchestrator.core.strict import StrictModel


class MuMathAugmentations(StrictModel):
    """How many questions of each kind one seed yields (0 turns a kind off)."""

    original: int = Field(1, ge=0, le=1, description="the seed question itself")
    rephrase: int = Field(1, ge=0, le=10)
    alter_expression: int = Field(1, ge=0, le=10, description="numbers/expressions replaced")
    alter_harder: int = Field(1, ge=0, le=10, description="a harder variant")
    fobar: int = Field(1, ge=0, le=10, description="backward question (by program)")
    bf_trans: int = Field(1, ge=0, le=10, description="backward question made forward")


class MuMathTemplates(StrictModel):
    rephrase: TemplateName = "mumath_code/rephrase"
    alter_expression: TemplateName = "mumath_code/alter_expression"
    alter_harder: TemplateName = "mumath_code/alter_harder"
    bf_trans: TemplateName = "mumath_code/bf_trans"
    solve_code: TemplateName = "mumath_code/solve_code"
    solve_cot: TemplateName = "mumath_code/solve_cot"


class MuMathConfig(StrictModel):
    """MuMath-Code: multi-perspective question augmentation + code-nested solutions."""

    # code: stage-2 data (reasoning with executed ```python blocks); cot: stage-1 data.
    solution_format: Literal["code", "cot"] = "code"
    augmentations: MuMathAugmentations = MuMathAugmentations()
    samples_per_question: int = Field(10, ge=1, le=64)
    max_tool_calls: int = Field(4, ge=0, le=16, description="code executions per solution")
    output_max_chars: int = Field(1000, ge=50, description="a code output longer is cut")
    # A question without a gold answer keeps the majority answer if at least this share of
    # all samples agree on it.
    agreement_threshold: float = Field(0.5, gt=0, le=1)
    require_tool_call: bool = Field(
        True, description="code format: keep only solutions that ran code"
    )
    seed: int = Field(0, description="base seed of the masked-number draws")
    templates: MuMathTemplates = MuMathTemplates()
    sampling: SamplingParams = SamplingParams(temperature=0.7, max_tokens=1024)
    # Per teacher turn; with `seed` set, sample k is sent seed + k (reproducible samples).
    solve_sampling: SamplingParams = SamplingParams(temperature=0.7, max_tokens=1024)
