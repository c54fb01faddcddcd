"""The ``skywork:`` section of a pipeline file. Validation only; see ``skywork.pipeline``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from orchestrator.core.prompts import TemplateName
from orchestrator.core.sampling import SamplingParams
from orchestrator.core.strict import StrictModel

EvolMove = Literal["same_difficulty", "add_constraints", "deepen", "concretize", "more_reasoning"]
EVOL_MOVES: tuple[EvolMove, ...] = (
    "same_difficulty",
    "add_constraints",
    "deepen",
    "concretize",
    "more_reasoning",
)


class _Weights(StrictModel):
    @model_validator(mode="after")
    def _some_weight(self) -> _Weights:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("at least one weight must be positive")
        return self

    def items(self) -> list[tuple[str, float]]:
        return [(k, float(v)) for k, v in self.model_dump().items() if v > 0]


class FamilyMix(_Weights):
    """Relative weights of the three augmentation families (need not sum to 1)."""

    metamath: float = Field(0.4, ge=0)
    evol_instruct: float = Field(0.4, ge=0)
    self_correction: float = Field(0.2, ge=0)


class MetaMathMix(_Weights):
    """Relative weights of the MetaMath operations inside the ``metamath`` family."""

    rephrase: float = Field(1.0, ge=0)
    fobar: float = Field(1.0, ge=0)
    self_verification: float = Field(1.0, ge=0)
    answer_augmentation: float = Field(1.0, ge=0)


class SkyworkTemplates(StrictModel):
    rephrase: TemplateName = "skywork/rephrase"
    evol_instruct: TemplateName = "skywork/evol_instruct"
    self_correction: TemplateName = "skywork/self_correction"
    solve: TemplateName = "skywork/solve"


class SkyworkConfig(StrictModel):
    """Skywork-Math two-stage synthesis (MetaMath + Evol-Instruct + self-correction)."""

    stage: Literal[1, 2] = 1
    problems_per_seed: int = Field(4, ge=1, le=100, description="augmentation slots per seed")
    families: FamilyMix = FamilyMix()
    metamath: MetaMathMix = MetaMathMix()
    evol_steps: int = Field(5, ge=1, le=10, description="evolution rounds per evol slot")
    evol_moves: list[EvolMove] = Field(default_factory=lambda: list(EVOL_MOVES), min_length=1)
    check_gold: bool = Field(True, description="drop solutions that miss a known gold answer")
    seed: int = Field(0, description="base seed of the family/operation/move draws")
    templates: SkyworkTemplates = SkyworkTemplates()
    sampling: SamplingParams = SamplingParams(temperature=0.7, max_tokens=1024)
    solve_sampling: SamplingParams = SamplingParams(temperature=0.7, max_tokens=2048)

    def moves_for_stage(self) -> list[str]:
        """Stage 2 only makes problems harder: the same-difficulty rewrite is left out."""
        if self.stage == 2:
            harder = [m for m in self.evol_moves if m != "same_difficulty"]
            return harder or ["add_constraints"]
        return list(self.evol_moves)
