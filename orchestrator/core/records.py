"""The one record type that flows through every stage, and content hashing.

A ``Record`` is a seed problem or a generated item (a problem, optionally with a program and
its executed answer). Ids are content hashes, so the same content always gets the same id and
resume/caching are exact. This module does no I/O and knows nothing about Ray or teachers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any


def content_hash(*parts: Any, length: int = 16) -> str:
    """Stable hex digest of ``parts`` (JSON-encoded with sorted keys)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


_SPACE = re.compile(r"\s+")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


def normalize_question(text: str) -> str:
    """Normalised form used for exact dedup: case-folded, whitespace collapsed, edge punctuation
    stripped. Numbers and inner punctuation are kept (they change the problem)."""
    return _EDGE_PUNCT.sub("", _SPACE.sub(" ", text).strip().casefold())


@dataclass
class Record:
    """A seed or generated item. ``id`` is a content hash; ``meta`` holds stage-specific extras."""

    id: str
    question: str
    seed_id: str = ""
    method: str = "seed"
    source: str = ""
    gold_answer: str | None = None
    code: str | None = None
    answer: str | None = None
    teacher: str = ""
    template: str = ""
    template_hash: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    parent_id: str | None = None
    reject_reason: str | None = None
    reject_detail: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    reply_ids: list[str] = field(default_factory=list)  # keys of its teacher replies in the log

    @classmethod
    def seed(cls, question: str, gold_answer: str | None, source: str) -> Record:
        """A seed record whose id is the hash of its question and gold answer."""
        return cls(
            id=content_hash("seed", question.strip(), gold_answer),
            question=question.strip(),
            gold_answer=gold_answer,
            source=source,
        )

    def reject(self, reason: str, detail: str | None = None) -> Record:
        self.reject_reason = reason
        self.reject_detail = detail
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
