"""A deterministic fake Skywork teacher for tests: ``SkyworkTeacher(seed_rows)(request, index)``.

The last user message is a prompt rendered from ``prompts/skywork/*.j2``; the template is
recognised by its fixed ``Task: ...`` line (``TASK_MARKERS``). Replies depend only on the
prompt text, so retries get the same reply.

- rephrase: "Rephrased question: In other words: <q>" (every third reply without the label);
- evol-instruct: the given problem plus one sentence per move (``MOVE_SENTENCES``, keyed by the
  "Rewriting method:" line), so an evolved question's depth is the number of such sentences;
  one prompt in seven gets the problem back unchanged, one in seven a refusal (both must be
  eliminated by the pipeline);
- self-correction: a draft, a verification and a final question; one prompt in five has no
  "Final question:" line (must be dropped);
- solution: a short chain of thought ending in "The answer is $\\boxed{A}$" (every fourth
  without the box). ``A`` is the gold answer when the fake can recover it *without* the
  pipeline's code (the seed itself, "In other words:" rephrasings, and FOBAR / SV questions,
  whose unknown it finds by matching the masked question against the seeds), else a number
  derived from a hash; one question in six gets a wrong answer (``plan_solution``).

This module does not serve HTTP or check what the pipeline did.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.core.records import normalize_question

TASK_MARKERS = {
    "rephrase": "Task: skywork rephrase",
    "evol": "Task: skywork evol-instruct",
    "self_correction": "Task: skywork self-correcting question synthesis",
    "solve": "Task: skywork solution",
}
MOVE_SENTENCES = {
    "Same-difficulty rewrite": "Consider the same situation once more.",
    "Add constraints": "Assume in addition that every quantity is a positive integer.",
    "Deepen and broaden": "Then also describe the general case.",
    "Concretise concepts": "Here every object is a red marble.",
    "More reasoning steps": "Justify each step of the reasoning.",
}
REPHRASE_PREFIX = "In other words: "
REFUSAL = "Sorry, I cannot rewrite this problem."
_FOBAR = re.compile(
    r"^(?P<body>.*)\nIf we know the answer to the above question is (?P<a>.*), what is the "
    r"value of unknown variable (?P<v>[A-Z])\?$",
    re.S,
)
_SV = re.compile(
    r'^(?P<ctx>.*) We know that the answer to the question "(?P<asked>.*)" is (?P<a>.*)\. '
    r"What is the value of unknown variable (?P<v>[A-Z])\?$",
    re.S,
)


def _hash(*parts: object) -> int:
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def last_user_message(request_json: Mapping[str, Any]) -> str:
    for message in reversed(request_json.get("messages") or []):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    raise ValueError("request has no user message")


def detect_task(prompt: str) -> str:
    found = [task for task, marker in TASK_MARKERS.items() if marker in prompt]
    if len(found) != 1:
        raise ValueError(f"not a Skywork prompt: {prompt[:100]!r}")
    return found[0]


def _after(prompt: str, head: str, tail: str | None = None) -> str:
    text = prompt[prompt.rindex(head) + len(head) :]
    if tail is not None:
        text = text[: text.rindex(tail)]
    return text.strip()


def evolution_depth(question: str) -> int:
    return sum(question.count(s) for s in MOVE_SENTENCES.values())


def evolve_outcome(prompt: str) -> str:
    """ "ok", "unchanged" or "refusal" for an evol-instruct prompt."""
    bucket = _hash("evol", prompt) % 7
    return {0: "unchanged", 1: "refusal"}.get(bucket, "ok")


def self_correction_ok(prompt: str) -> bool:
    return _hash("self", prompt) % 5 != 0


@dataclass(frozen=True)
class PlannedSolution:
    answer: str
    gold: str | None  # what the fake recovered as the true answer (None: unknown)
    wrong: bool


class SkyworkTeacher:
    """Reply function for the scripted server; knows the seed problems (question, gold)."""

    def __init__(self, seeds: Iterable[tuple[str, str | None]]) -> None:
        seeds = list(seeds)
        self.gold = {normalize_question(q): a for q, a in seeds}
        self.questions = [" ".join(q.split()) for q, _ in seeds]

    def _unknown_value(self, masked: str, name: str, prefix_only: bool) -> str | None:
        escaped = re.escape(" ".join(masked.split()))
        pattern = re.sub(rf"(?<![A-Za-z]){name}(?![A-Za-z])", r"(\\d+(?:\\.\\d+)?)", escaped)
        for original in self.questions:
            match = (re.match if prefix_only else re.fullmatch)(pattern, original)
            if match:
                return match.group(1)
        return None

    def true_answer(self, question: str) -> str | None:
        question = question.strip()
        if question.startswith(REPHRASE_PREFIX):
            question = question[len(REPHRASE_PREFIX) :]
        known = self.gold.get(normalize_question(question))
        if known is not None:
            return known
        fobar = _FOBAR.match(question)
        if fobar:
            return self._unknown_value(fobar["body"], fobar["v"], prefix_only=False)
        sv = _SV.match(question)
        if sv:
            return self._unknown_value(f"{sv['ctx']} {sv['asked']}", sv["v"], prefix_only=True)
        return None

    def plan_solution(self, question: str) -> PlannedSolution:
        gold = self.true_answer(question)
        h = _hash("solve", normalize_question(question))
        answer = gold if gold is not None else str(10 + h % 990)
        wrong = h % 6 == 0
        if wrong:
            answer = str(100_000 + h % 1000)
        return PlannedSolution(answer, gold, wrong)

    def reply(self, prompt: str) -> str:
        task = detect_task(prompt)
        if task == "rephrase":
            question = _after(prompt, "Question to rephrase:\n", "\n\nRephrased question:")
            body = REPHRASE_PREFIX + question
            return body if _hash("label", prompt) % 3 == 0 else f"Rephrased question: {body}"
        if task == "evol":
            question = _after(prompt, "#The Given Problem#:\n", "\n\n#Rewritten Problem#:")
            title = re.findall(r"^Rewriting method: (.+)$", prompt, re.M)[-1]
            outcome = evolve_outcome(prompt)
            if outcome == "unchanged":
                return f"#Rewritten Problem#: {question}"
            if outcome == "refusal":
                return f"#Rewritten Problem#: {REFUSAL}"
            return f"#Rewritten Problem#: {question} {MOVE_SENTENCES[title]}"
        if task == "self_correction":
            seed = _after(prompt, "Seed problem:\n")
            final = f"A club repeats this puzzle with new numbers: {seed} What is 3 more?"
            text = (
                f"Draft question: {seed} (draft)\n"
                "Verification: The draft copies the seed; I change the setting and add a step.\n"
            )
            return text + (f"Final question: {final}" if self_correction_ok(prompt) else "")
        question = _after(prompt, "Problem:\n", "\n\nSolution:")
        planned = self.plan_solution(question)
        steps = "Let us work through the problem step by step.\nWe check the result once more.\n"
        if _hash("boxed", question) % 4 == 0:
            return steps + f"The answer is: {planned.answer}"
        return steps + f"The answer is $\\boxed{{{planned.answer}}}$."

    def __call__(self, request_json: Mapping[str, Any], index: int = 0) -> str:
        del index
        return self.reply(last_user_message(request_json))
