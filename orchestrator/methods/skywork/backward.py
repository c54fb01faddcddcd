"""Backward questions built by program, not by the teacher (MetaMath FOBAR and SV forms).

``mask_number`` replaces one number of a question with an unknown (``X``, or ``Y``/``Z``/``N``
when the question already uses that letter); the masked value becomes the new gold answer.
Only numbers that occur exactly once, outside ``[asy]`` drawings, and not inside LaTeX braces,
subscripts or exponents (``\\frac{1}{2}``, ``x^{3}``) can be masked, so the unknown has one
place and the question stays well formed. Then:

- ``fobar_question``: "<question with X>\\nIf we know the answer to the above question is A,
  what is the value of unknown variable X?" (Yu et al. 2023, FOBAR);
- ``self_verification_question``: the last question sentence is turned into a stated fact,
  "<context with X> We know that the answer to the question "<sentence>" is A. What is the
  value of unknown variable X?" (MetaMath's SV, with a fixed sentence pattern instead of a
  teacher rewrite).

Both need the original gold answer ``A``. This module does not call teachers or check that
the backward question has a unique solution (a wrong-X solution fails the gold check later).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

UNKNOWN_NAMES = ("X", "Y", "Z", "N")
# A standalone number: not part of a word/identifier, not inside {...}, not after ^ _ \, a
# decimal point or a thousands comma, not followed by more digits after "." or ",".
_CANDIDATE = re.compile(r"(?<![\w{^_\\.])(?<!\d,)(\d+(?:\.\d+)?)(?![\w}]|[.,]\d)")
_ASY = re.compile(r"\[asy\].*?\[/asy\]", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+(?=[A-Z$\\\"(])")
_INSTRUCTION = re.compile(r"^(?:Express|Give|Round|Enter|Write|Simplify your)\b")


@dataclass(frozen=True)
class Masked:
    """A question with one number replaced by ``name``; ``value`` is the number's text."""

    question: str
    name: str
    value: str
    position: int  # character offset of the masked number in the original question


def unknown_name(question: str) -> str | None:
    """The first of ``UNKNOWN_NAMES`` not already a standalone token (either case)."""
    for name in UNKNOWN_NAMES:
        if not re.search(rf"(?<![A-Za-z\\]){name}(?![A-Za-z])", question, re.IGNORECASE):
            return name
    return None


def maskable_numbers(question: str) -> list[re.Match[str]]:
    """Candidate numbers (see module docstring), in text order."""
    asy = [m.span() for m in _ASY.finditer(question)]
    found = [
        m for m in _CANDIDATE.finditer(question) if not any(lo <= m.start() < hi for lo, hi in asy)
    ]
    counts: dict[str, int] = {}
    for m in _CANDIDATE.finditer(question):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return [m for m in found if counts[m.group(1)] == 1]


def mask_number(question: str, rng: random.Random) -> Masked | None:
    """Mask one candidate number chosen by ``rng``; None if there is none or no free name."""
    name = unknown_name(question)
    candidates = maskable_numbers(question)
    if name is None or not candidates:
        return None
    match = rng.choice(candidates)
    masked = question[: match.start()] + name + question[match.end() :]
    return Masked(masked, name, match.group(1), match.start())


def fobar_question(masked: Masked, answer: str) -> str:
    return (
        f"{masked.question.rstrip()}\nIf we know the answer to the above question is "
        f"{answer.strip()}, what is the value of unknown variable {masked.name}?"
    )


def split_last_question(question: str) -> tuple[str, str] | None:
    """(context, final question sentence), ignoring trailing instructions such as "Express
    your answer as a common fraction."; None for a one-sentence question."""
    sentences = [s for s in _SENTENCE_END.split(question.strip()) if s.strip()]
    while len(sentences) > 1 and _INSTRUCTION.match(sentences[-1]):
        sentences.pop()
    if len(sentences) < 2:
        return None
    return " ".join(sentences[:-1]), sentences[-1]


def self_verification_question(masked: Masked, answer: str) -> str | None:
    """The SV form of a masked question, or None when it has no separate question sentence."""
    parts = split_last_question(masked.question)
    if parts is None:
        return None
    context, asked = parts
    if not re.search(rf"(?<![A-Za-z]){masked.name}(?![A-Za-z])", f"{context} {asked}"):
        return None  # the number was masked in a dropped instruction sentence
    return (
        f'{context} We know that the answer to the question "{asked}" is {answer.strip()}. '
        f"What is the value of unknown variable {masked.name}?"
    )
