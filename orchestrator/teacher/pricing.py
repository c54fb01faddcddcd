"""Teacher prices ($ per 1M input / output tokens) and the cost of token counts.

The default table is ``prices.yaml`` beside this file; a pipeline overrides it with
``teacher.price``. A model with no known price has no cost (None), never a guessed one.
This module does not count tokens; the teacher's ``usage`` replies do.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

PRICES_FILE = Path(__file__).with_name("prices.yaml")


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_per_m: float = Field(ge=0)
    output_per_m: float = Field(ge=0)

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.input_per_m + completion_tokens * self.output_per_m) / 1e6


@lru_cache(maxsize=1)
def default_prices() -> dict[str, Price]:
    raw = yaml.safe_load(PRICES_FILE.read_text(encoding="utf-8")) or {}
    return {name: Price.model_validate(value) for name, value in raw.items()}


def price_for(model: str | None, override: Price | None = None) -> Price | None:
    """The override, else the table's price for ``model`` (also without an ``org/`` prefix)."""
    if override is not None:
        return override
    if not model:
        return None
    table = default_prices()
    return table.get(model) or table.get(model.rsplit("/", 1)[-1])
