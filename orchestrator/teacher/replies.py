"""A teacher reply: the ``Completion`` dataclass and how a chat-completion JSON body becomes one.

``parse_completion`` reads the fields of OpenAI's ``chat.completion`` object from plain JSON
(first choice's text and ``finish_reason``, ``usage`` token counts, the serving ``model``) and
raises ``_MalformedReply`` for a body that is not a usable chat completion; missing or non-numeric
token counts read as 0. ``_MalformedReply`` is internal to the teacher package: the retry policy
(``retries.py``) retries it and ``failures.py`` turns the last one into a ``TeacherError``.
Each carries a ``cause``: ``html_body`` / ``empty_body`` / ``not_json`` (``body_cause``, from the
body bytes and content type of a 200 that is not JSON) or ``not_completion`` (JSON of the wrong
shape).

What it does NOT do: HTTP, retries, stats or logging (``client.py``), or checking the text
itself (empty or truncated text is still a valid reply; the length policy lives in the steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BODY_CAUSES", "Completion", "body_cause", "parse_completion"]

BODY_CAUSES = {
    "html_body": "an HTML page, not the OpenAI API (is the base URL right? most servers serve "
    "the API under /v1)",
    "empty_body": "an empty body",
    "not_json": "a body that is not JSON",
    "not_completion": "JSON that is not a chat completion",
}


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    model: str
    attempts: int  # HTTP attempts this completion took (1 = no retry; 0 = from the reply log)
    reply_id: str | None = None  # its key in the reply log (set by the engine)


class _MalformedReply(Exception):
    """A 200 reply that is not a usable chat completion (internal; retried)."""

    def __init__(self, message: str, cause: str = "not_completion") -> None:
        super().__init__(message)
        self.cause = cause


def body_cause(content: bytes, content_type: str | None) -> str:
    """Why a 200 body is not JSON: ``empty_body``, ``html_body`` (an HTML content type, or a
    body that starts with ``<``) or ``not_json``."""
    stripped = content.strip()
    if not stripped:
        return "empty_body"
    if "html" in (content_type or "").lower() or stripped.startswith(b"<"):
        return "html_body"
    return "not_json"


def _count(value: object) -> int:
    """A token count from a reply's ``usage`` (0 when absent or not a number)."""
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0


def parse_completion(reply: object, attempt: int, default_model: str) -> Completion:
    """A ``Completion`` from the reply's JSON (the fields of OpenAI's chat.completion);
    ``default_model`` names the model when the reply does not."""
    if not isinstance(reply, dict):
        raise _MalformedReply(f"reply is a JSON {type(reply).__name__}, not a chat completion")
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _MalformedReply("reply has no choices")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(message, dict) or not isinstance(content, (str, type(None))):
        raise _MalformedReply("first choice has no message")
    usage = reply.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    finish_reason = choices[0].get("finish_reason")
    model = reply.get("model")
    return Completion(
        text=content or "",
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        model=model if isinstance(model, str) and model else default_model,
        attempts=attempt,
    )
