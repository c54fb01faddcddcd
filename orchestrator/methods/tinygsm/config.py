"""The ``tinygsm:`` section of a pipeline file. Validation only; see ``tinygsm.pipeline``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestrator.core.prompts import TemplateName
from orchestrator.core.sampling import SamplingParams
from orchestrator.core.strict import StrictModel


class TinyGSMTemplates(StrictModel):
    one_step: TemplateName = "tinygsm/one_step"
    two_step_questions: TemplateName = "tinygsm/two_step_questions"
    two_step_gsm_ic: TemplateName = "tinygsm/two_step_gsm_ic"
    two_step_program: TemplateName = "tinygsm/two_step_program"


class VerifierDataConfig(StrictModel):
    """TinyGSM's verifier training data: ``samples`` labelled programs per seed (side split)."""

    enabled: bool = False
    samples: int = Field(8, ge=1, le=100)
    sampling: SamplingParams = SamplingParams(temperature=0.7, max_tokens=768)
    # Seeds without a gold answer: label against the majority answer if its share reaches this.
    pseudo_answer_threshold: float = Field(0.5, gt=0, le=1)


class TinyGSMConfig(StrictModel):
    """TinyGSM generation: one-step (Fig. 3) or two-step (Figs. 7-9) synthesis."""

    method: Literal["one-step", "two-step"] = "one-step"
    problems_per_seed: int = Field(10, ge=1, le=100)
    # Two-step prompt families: plain question variants and GSM-IC (irrelevant context).
    two_step_families: list[Literal["variants", "gsm_ic"]] = ["variants", "gsm_ic"]
    templates: TinyGSMTemplates = TinyGSMTemplates()
    sampling: SamplingParams = SamplingParams()
    program_sampling: SamplingParams = SamplingParams(temperature=0.0, max_tokens=768)
    verifier: VerifierDataConfig = VerifierDataConfig()
    # Drop programs that import or call outside a small allow-list (I/O, network, reflection)
    # before they run; see orchestrator.methods.tinygsm.program_filter.
    program_filter: bool = True
