"""Configurable length and format filters for generated records.

Three ``Filter`` stages and a settings model that builds them:

- ``QuestionSize``: question length in words (whitespace-separated) and characters;
- ``SolutionSize``: solution length in whitespace tokens (a cheap proxy for model tokens,
  about 0.75 of a BPE count on English-plus-code; no tokenizer is loaded), on ``code`` by
  default or any other text field;
- ``RequiredStructure``: every listed pattern must occur in a field (e.g. a TinyGSM program
  must contain ``return result``); substrings by default, regular expressions if asked.

Reasons: ``question_too_short``/``question_too_long``, ``solution_too_short``/
``solution_too_long``/``no_solution``, ``missing_structure`` (detail: the missing pattern).
This module does not check answers (``orchestrator.quality.verify``) or filter questions for numbers
(``orchestrator.quality.filters``).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.core.records import Record
from orchestrator.core.stage import Filter, Stage


class QuestionSize(Filter):
    name = "format"

    def __init__(self, min_words: int = 0, max_words: int | None = None, min_chars: int = 0,
                 max_chars: int | None = None) -> None:  # fmt: skip
        super().__init__()
        self.min_words, self.max_words = min_words, max_words
        self.min_chars, self.max_chars = min_chars, max_chars

    def filter(self, record: Record) -> str | None:
        words, chars = len(record.question.split()), len(record.question.strip())
        if words < self.min_words or chars < self.min_chars:
            return "question_too_short"
        if (self.max_words is not None and words > self.max_words) or (
            self.max_chars is not None and chars > self.max_chars
        ):
            return "question_too_long"
        return None


class SolutionSize(Filter):
    name = "format"

    def __init__(self, min_tokens: int = 0, max_tokens: int | None = None, field: str = "code"):
        super().__init__()
        self.min_tokens, self.max_tokens, self.field = min_tokens, max_tokens, field

    def filter(self, record: Record) -> str | None:
        text = getattr(record, self.field, None)
        if not text:
            return "no_solution"
        tokens = len(str(text).split())
        if tokens < self.min_tokens:
            return "solution_too_short"
        if self.max_tokens is not None and tokens > self.max_tokens:
            return "solution_too_long"
        return None


class RequiredStructure(Filter):
    name = "format"

    def __init__(self, patterns: list[str], field: str = "code", regex: bool = False) -> None:
        super().__init__()
        self.field = field
        self.patterns = patterns
        self._compiled = [re.compile(p if regex else re.escape(p)) for p in patterns]
        self._missing: dict[int, str] = {}

    def filter(self, record: Record) -> str | None:
        text = str(getattr(record, self.field, None) or "")
        for pattern, compiled in zip(self.patterns, self._compiled, strict=True):
            if not compiled.search(text):
                self._missing[id(record)] = pattern
                return "missing_structure"
        return None

    def drop(self, record: Record, reason: str, detail: str | None = None) -> None:
        missing = self._missing.pop(id(record), None)
        super().drop(
            record, reason, detail or (f"{self.field} lacks {missing!r}" if missing else None)
        )


class FormatSettings(BaseModel):
    """Which format filters to run; zero/None/empty disables a check."""

    model_config = ConfigDict(extra="forbid")

    question_min_words: int = Field(0, ge=0)
    question_max_words: int | None = Field(None, ge=1)
    question_min_chars: int = Field(0, ge=0)
    question_max_chars: int | None = Field(None, ge=1)
    solution_field: str = "code"
    solution_min_tokens: int = Field(0, ge=0)
    solution_max_tokens: int | None = Field(None, ge=1)
    required: list[str] = Field(default_factory=list, description="e.g. ['return result']")
    required_regex: bool = False

    def build(self) -> list[Stage]:
        stages: list[Stage] = []
        if (
            self.question_min_words
            or self.question_max_words
            or self.question_min_chars
            or (self.question_max_chars)
        ):
            stages.append(QuestionSize(self.question_min_words, self.question_max_words,
                                       self.question_min_chars, self.question_max_chars))  # fmt: skip
        if self.solution_min_tokens or self.solution_max_tokens:
            stages.append(SolutionSize(self.solution_min_tokens, self.solution_max_tokens,
                                       self.solution_field))  # fmt: skip
        if self.required:
            stages.append(
                RequiredStructure(self.required, self.solution_field, self.required_regex)
            )
        return stages
