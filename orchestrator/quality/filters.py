"""Question-level filters from TinyGSM: too short, or no number in the question.

Each filter is one small ``Filter`` stage. Answer checks live with program execution
(``orchestrator.methods.tinygsm.execute``); dedup lives in ``orchestrator.quality.dedup``.
"""

from __future__ import annotations

import re

from orchestrator.core.records import Record
from orchestrator.core.stage import Filter

_NUMBER = re.compile(r"\d")
_WORD = re.compile(r"\S+")


class QuestionLength(Filter):
    name = "question_filter"

    def __init__(self, min_words: int) -> None:
        super().__init__()
        self.min_words = min_words

    def filter(self, record: Record) -> str | None:
        if len(_WORD.findall(record.question)) < self.min_words:
            return "too_short"
        return None


class QuestionHasNumber(Filter):
    name = "question_filter"

    def filter(self, record: Record) -> str | None:
        return None if _NUMBER.search(record.question) else "no_number"
