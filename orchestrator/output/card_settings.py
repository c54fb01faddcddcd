"""``card:`` of a pipeline file: the dataset card's metadata that the data cannot tell.

License, languages, task categories, extra tags and a display name, with defaults that claim
nothing on the user's behalf (license ``unknown`` until set). The card itself is built by
``orchestrator.output.card``; this module only declares the settings and does no I/O.
"""

from __future__ import annotations

from pydantic import Field

from orchestrator.core.strict import StrictModel


class CardSettings(StrictModel):
    license: str = Field(
        "unknown", description="a Hub license id (apache-2.0, mit, cc-by-4.0, other, ...)"
    )
    language: list[str] = ["en"]
    task_categories: list[str] = ["text-generation", "question-answering"]
    tags: list[str] = Field([], description="added to synthetic, math, mathsynth and the kind")
    pretty_name: str | None = Field(None, description="default: 'mathsynth <pipeline name>'")
