"""The Batch API's file formats: the JSONL input file, result files, and what one result means.

``input_jsonl`` writes one line per request (``custom_id``, ``method: POST``,
``url: /v1/chat/completions``, ``body``); ``parse_results`` reads an output or error file into
lines by ``custom_id``; ``classify`` decides what a result line (or its absence) means for the
call waiting on it, by status code only:

* 200 with a JSON object body -> ``ok`` (the client turns it into a ``Completion``, or finds it
  malformed); 200 with anything else -> ``malformed``;
* 408/409/429/5xx, a line with no response (e.g. ``error.code == "batch_expired"``), or no line
  at all in an ``expired``/``cancelled``/``completed`` batch -> ``retry`` (submit again);
* other statuses -> ``fail`` with that status; no line in a ``failed`` batch (the provider
  rejected the input file) -> ``fail`` without a status.

This module does no I/O and raises nothing; ``batch_client`` acts on the outcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.teacher.retries import TRANSIENT_STATUSES

__all__ = ["ENDPOINT", "LineOutcome", "classify", "input_jsonl", "parse_results"]

ENDPOINT = "/v1/chat/completions"


@dataclass(frozen=True)
class LineOutcome:
    action: Literal["ok", "retry", "fail", "malformed"]
    status: int | None = None
    why: str = ""
    body: dict[str, Any] | None = None  # the chat completion JSON of an ``ok`` line


def input_jsonl(requests: list[tuple[str, dict[str, Any]]]) -> bytes:
    """The batch input file for ``(custom_id, body)`` pairs."""
    lines = (
        json.dumps({"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body},
                   ensure_ascii=False)
        for cid, body in requests
    )  # fmt: skip
    return "".join(line + "\n" for line in lines).encode("utf-8")


def parse_results(text: str) -> dict[str, dict[str, Any]]:
    """Result lines by ``custom_id``; lines that are not JSON objects with one are skipped."""
    out: dict[str, dict[str, Any]] = {}
    for raw in text.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and isinstance(line.get("custom_id"), str):
            out[line["custom_id"]] = line
    return out


def classify(line: dict[str, Any] | None, batch_status: str) -> LineOutcome:
    """What ``line`` (None: the batch has no line for the call) means (see module docstring)."""
    if line is None:
        if batch_status == "failed":
            return LineOutcome("fail", why="batch failed (input file rejected)")
        return LineOutcome("retry", why=f"no result in {batch_status} batch")
    response = line.get("response")
    status = response.get("status_code") if isinstance(response, dict) else None
    if not isinstance(status, int) or isinstance(status, bool):
        return LineOutcome("retry", why="line not processed")
    assert isinstance(response, dict)
    if status == 200:
        body = response.get("body")
        if not isinstance(body, dict):
            return LineOutcome("malformed", 200, "result is not a JSON object")
        return LineOutcome("ok", 200, body=body)
    if status >= 500 or status in TRANSIENT_STATUSES:
        return LineOutcome("retry", status, f"HTTP {status}")
    return LineOutcome("fail", status, f"HTTP {status}")
