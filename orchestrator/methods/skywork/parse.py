"""Read a question out of a teacher reply that labels it ("Final question: ...").

``labelled_text`` returns the text after the *last* line that starts with one of the labels
(Markdown emphasis, heading marks and ``#...#`` wrappers around the label are tolerated) up to
the end of the reply or the next known label, without code fences or wrapping quotes.
``evolution_problem`` names what is wrong with an evolved question (WizardLM's elimination
rules: unchanged, prompt words leaked into it, a refusal, too short). This module does not
call teachers or build records.
"""

from __future__ import annotations

import re

from orchestrator.core.records import normalize_question

_FENCE = re.compile(r"^[ \t]*```[\w+-]*[ \t]*$", re.MULTILINE)
_LEAKED = ("given problem", "rewritten problem", "given prompt", "rewritten prompt")
_REFUSAL = re.compile(r"\b(?:sorry|as an ai|i cannot|i can't)\b", re.IGNORECASE)


def _label_pattern(labels: tuple[str, ...]) -> re.Pattern[str]:
    names = "|".join(re.escape(label) for label in labels)
    return re.compile(
        rf"^[ \t]*(?:#+[ \t]*)?(?:\*\*|__)?[ \t]*#?(?:{names})#?[ \t]*(?:\*\*|__)?[ \t]*:?"
        rf"[ \t]*(?:\*\*|__)?[ \t]*",
        re.IGNORECASE | re.MULTILINE,
    )


def labelled_text(
    text: str, labels: tuple[str, ...], stop_labels: tuple[str, ...] = ()
) -> str | None:
    """The text after the last ``labels`` line (see module docstring), or None."""
    matches = list(_label_pattern(labels).finditer(text or ""))
    if not matches:
        return None
    rest = text[matches[-1].end() :]
    if stop_labels:
        stop = _label_pattern(stop_labels).search(rest)
        if stop:
            rest = rest[: stop.start()]
    return clean_question(rest)


def clean_question(text: str) -> str | None:
    """Strip code fences, surrounding quotes/emphasis and blank edges; None if empty."""
    text = _FENCE.sub("", text).strip()
    for wrap in ('"', "**", "__"):
        if len(text) > 2 * len(wrap) and text.startswith(wrap) and text.endswith(wrap):
            text = text[len(wrap) : -len(wrap)].strip()
    return text or None


def evolution_problem(before: str, after: str, min_words: int = 4) -> str | None:
    """Why an evolved question must be eliminated, or None if it is usable."""
    if normalize_question(after) == normalize_question(before):
        return "unchanged"
    lowered = after.casefold()
    if any(word in lowered for word in _LEAKED):
        return "leaked_prompt"
    if _REFUSAL.search(after):
        return "refusal"
    if len(after.split()) < min_words:
        return "too_short"
    return None
