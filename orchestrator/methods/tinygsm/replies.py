"""Parse TinyGSM teacher replies into items: one-step ``(question, program)`` pairs, two-step
question lists, and the single program of a two-step program reply.

Replies follow the ``prompts/tinygsm/*.j2`` formats: questions end with ``<|endofquestion|>``
and programs with ``<|endofprogram|>``. Parsing is tolerant of what real models add (the
cleaning lives in ``reply_text``) and strict about what cannot be recovered: a pair cut off by
the token limit is dropped, never half-used. Every item that could not be used leaves one
short reason string in ``ParseResult.errors`` so the engine can count rejections by reason:

- ``empty_question``: a question marker with no question text before it;
- ``missing_program``: a question with no program (empty program, or two questions in a row);
- ``missing_marker``: a program marker whose segment has no question marker and no fence or
  ``def`` line to split on;
- ``truncated``: text after the last complete pair that starts another item (a cut-off reply);
- ``no_pairs`` / ``no_questions``: the reply gave no item and no other reason explains it.

This module does not rewrite programs into the stored function form (``function_form`` does),
does not execute, sandbox or judge programs, does not filter or deduplicate questions, and
does not call teachers.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from orchestrator.methods.tinygsm.program_ast import ast_parse
from orchestrator.methods.tinygsm.reply_text import (
    END_OF_PROGRAM,
    END_OF_QUESTION,
    FENCE_LINE,
    FENCED_BLOCK,
    LABEL,
    clean_question,
    extract_code,
    split_numbered,
    split_unmarked,
    starts_item,
)

__all__ = ["ParseResult", "parse_one_step", "parse_program", "parse_questions"]


@dataclass
class ParseResult:
    """Items parsed from one reply plus one reason string per unusable item.

    For ``parse_one_step`` items are ``(question, program_source)`` pairs; for
    ``parse_questions`` they are question strings."""

    items: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# --- one-step ------------------------------------------------------------------------------


def parse_one_step(text: str) -> ParseResult:
    """Split a one-step reply into ``(question, program)`` pairs.

    Each pair is the text up to an ``<|endofprogram|>``; inside it, the question is the text
    before ``<|endofquestion|>`` (numbering and preamble removed, whitespace collapsed) and the
    program is the code after it (fences and labels removed). Text after the last
    ``<|endofprogram|>`` that starts another item counts as one ``truncated`` item and is
    dropped; closing prose there is ignored.
    """
    result = ParseResult()
    segments = (text or "").split(END_OF_PROGRAM)
    complete, tail = segments[:-1], segments[-1]
    for segment in complete:
        if END_OF_QUESTION in segment:
            parts = segment.split(END_OF_QUESTION)
            # Two or more question markers: the earlier questions have no program.
            result.errors.extend("missing_program" for _ in parts[1:-1])
            question_part, program_part = parts[-2], parts[-1]
        else:
            split = split_unmarked(segment)
            if split is None:
                if segment.strip():
                    result.errors.append("missing_marker")
                continue
            question_part, program_part = split
        question = clean_question(question_part)
        program = extract_code(program_part)
        if not question:
            result.errors.append("empty_question")
        elif not program:
            result.errors.append("missing_program")
        else:
            result.items.append((question, program))
    if starts_item(tail):
        result.errors.append("truncated")
    if not result.items and not result.errors:
        result.errors.append("no_pairs")
    return result


# --- two-step ------------------------------------------------------------------------------


def parse_questions(text: str) -> ParseResult:
    """Split a two-step question-list reply on ``<|endofquestion|>`` into question strings.

    Leftover text after the last marker is a question missing its final marker when it starts
    with a numbering label and ends with "?"; it is ``truncated`` when it starts with a label
    but does not end with "?"; otherwise it is closing prose and ignored. A reply with no
    marker at all falls back to splitting a numbered list ("1. ...", "Problem 2: ...") and
    keeps the items ending with "?".
    """
    result = ParseResult()
    text = text or ""
    if END_OF_QUESTION not in text:
        for part in split_numbered(text):
            _keep_if_complete(clean_question(part), result)
        if not result.items and not result.errors:
            result.errors.append("no_questions")
        return result
    parts = text.split(END_OF_QUESTION)
    for part in parts[:-1]:
        question = clean_question(part)
        if question:
            result.items.append(question)
        else:
            result.errors.append("empty_question")
    tail = FENCE_LINE.sub("", parts[-1]).strip()
    if tail and LABEL.match(tail):
        _keep_if_complete(clean_question(tail), result)
    if not result.items and not result.errors:
        result.errors.append("no_questions")
    return result


def _keep_if_complete(question: str, result: ParseResult) -> None:
    """An unmarked question counts only if it ends with "?"; otherwise it was cut off."""
    if question.endswith("?"):
        result.items.append(question)
    elif question:
        result.errors.append("truncated")


def _looks_complete(code: str) -> bool:
    """Whether unmarked, unfenced code plausibly ends where the author meant it to: it parses
    and its last statement (or the last statement of its last function) is a ``return`` or an
    assignment to ``result``."""
    try:
        tree = ast_parse(code)
    except (SyntaxError, ValueError):
        return False
    body: list[ast.stmt] = tree.body
    while body and isinstance(body[-1], ast.FunctionDef):
        body = body[-1].body
    if not body:
        return False
    last = body[-1]
    if isinstance(last, ast.Return):
        return True
    targets = last.targets if isinstance(last, ast.Assign) else []
    return any(isinstance(t, ast.Name) and t.id == "result" for t in targets)


def parse_program(text: str) -> str | None:
    """The program in a two-step program reply, or None when there is none.

    Prefers the first closed fenced code block (a ```python``` one first); otherwise the text
    before ``<|endofprogram|>`` with labels and leading/trailing prose removed. A reply with
    neither a closed fence nor the marker is used only when it parses and ends with
    ``return ...`` or ``result = ...`` (a reply cut off by the token limit gives None). The
    program returned is not guaranteed to parse: ``to_tinygsm_function`` decides.
    """
    text = text or ""
    head, marker, _ = text.partition(END_OF_PROGRAM)
    # A fenced block is closed when its match ends with the fence (else it ran to the end).
    closed = [
        b for b in FENCED_BLOCK.finditer(head) if b.group(0).rstrip().endswith(b.group("fence"))
    ]
    if not marker and not closed:
        code = extract_code(head)
        return code if code and _looks_complete(code) else None
    code = extract_code(head)
    return code or None
