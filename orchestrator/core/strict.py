"""``StrictModel``: the base of every pipeline-file section, so an unknown key is an error.
It holds no fields of its own."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
