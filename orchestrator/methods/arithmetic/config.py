"""The ``arithmetic:`` section of a pipeline file. Validation only; see ``arithmetic.pipeline``."""

from __future__ import annotations

from pydantic import Field, model_validator

from orchestrator.core.strict import StrictModel


class TaskMix(StrictModel):
    """Relative weights of the task types (need not sum to 1; 0 turns one off)."""

    add: float = Field(1.0, ge=0)
    sub: float = Field(1.0, ge=0)
    mul_n1: float = Field(1.0, ge=0, description="n-digit x 1-digit, answered directly")
    mul_nm: float = Field(1.0, ge=0, description="n-digit x m-digit, decomposed step by step")
    div_n1: float = Field(1.0, ge=0, description="n-digit / 1-digit with remainder, directly")
    div_nm: float = Field(1.0, ge=0, description="n-digit / m-digit, long division steps")

    @model_validator(mode="after")
    def _some_weight(self) -> TaskMix:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("at least one task weight must be positive")
        return self

    def items(self) -> list[tuple[str, float]]:
        return [(k, float(v)) for k, v in self.model_dump().items() if v > 0]


class Digits(StrictModel):
    """Largest operand sizes in digits (lengths are drawn uniformly from 1..max, then a value
    uniformly among numbers of that length: log-uniform values)."""

    add_sub: int = Field(16, ge=1, le=64)
    mul_n1: int = Field(16, ge=1, le=64)
    mul_nm: int = Field(8, ge=2, le=32, description="each operand of n x m (at least 2 digits)")
    div_n1: int = Field(16, ge=1, le=64)
    div_nm_dividend: int = Field(12, ge=2, le=64)
    div_nm_divisor: int = Field(6, ge=2, le=32)


class Noise(StrictModel):
    """Probabilities of surface noise in the instructions."""

    word_form: float = Field(0.3, ge=0, le=1, description="'plus', 'times', 'divided by' ...")
    x_for_times: float = Field(0.5, ge=0, le=1, description="'x' or '×' instead of '*'")
    spacing: float = Field(0.3, ge=0, le=1, description="operators without or with extra spaces")


class ArithmeticConfig(StrictModel):
    """Goat-style arithmetic set: no teacher, exact answers, reproducible from ``seed``."""

    seed: int = 0
    size: int = Field(100_000, ge=1, description="items in total")
    items_per_shard: int = Field(1000, ge=1, description="items per seed record (shard)")
    tasks: TaskMix = TaskMix()
    digits: Digits = Digits()
    noise: Noise = Noise()
