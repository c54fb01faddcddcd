"""A deterministic fake MuMath-Code teacher for tests: ``mumath_reply(request_json, index)``.

Its world is one family of word problems it can solve without the pipeline's code:
"<Name> packs <a> boxes with <b> <obj> in each box and then finds <c> more <obj>. How many
<obj> does <Name> have now?" (``seed_rows`` makes seeds). Numbers are read in order; any of
them may be an unknown (a FOBAR letter, or "a certain number of" in BF-Trans questions); "gives
away" turns + into -, "doubles" multiplies the total by 2 (``true_answer``).

Question prompts (``Task: mumath ...`` markers): rephrase -> "Rephrased question: <Name>
fills ..."; expression replacement -> one more box and "gives away" instead of "finds";
harder variant -> appends "Then <Name> doubles the number of <obj>."; BF-Trans -> the unknown
becomes "a certain number of", the answer a stated fact, "What is that certain number?".

Solution prompts: the scenario of a sample depends on the question and the request's ``seed``
(sample k is sent seed+k), see ``plan_sample``: ``direct`` (code, then the boxed output),
``error_fix`` (code dividing by zero; after the error, fixed code; then the boxed output),
``wrong`` (code off by one), ``loop`` (code in every turn: hits the call limit), ``no_code``
(boxed answer without code), ``no_answer``. Harder-variant questions confuse it: its code adds
``seed % 3`` to the result, so no answer reaches a majority of one half. Every code reply goes
on with a made-up ```output block, which the server's stop sequence must cut. Boxed answers are
read from the real ```output the pipeline sent back. Replies depend only on the request.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

TASK_MARKERS = {
    "rephrase": "Task: mumath rephrase",
    "alter_expression": "Task: mumath expression replacement",
    "alter_harder": "Task: mumath harder variant",
    "bf_trans": "Task: mumath backward-forward transformation",
    "solve_code": "Task: mumath code-nested solution",
    "solve_cot": "Task: mumath chain-of-thought solution",
}
NAMES = ("Tom", "Mia", "Ravi", "Lena", "Omar", "Grace", "Yuki", "Sofia")
OBJECTS = ("apples", "pencils", "marbles", "stickers", "shells", "stamps")
CERTAIN = "a certain number of"
_UNKNOWN = r"(?:\d+|[XYZN]|a certain number of)"
_BASE = re.compile(
    rf"^(?P<name>[A-Z][a-z]+) (?:packs|fills) (?P<a>{_UNKNOWN}) boxes(?: with|, putting) "
    rf"(?P<b>{_UNKNOWN}) (?P<obj>[a-z]+) (?:in|into) each (?:box|one)"
)
_FOBAR = re.compile(r"\nIf we know the answer to the above question is (\d+), what is")
_BF = re.compile(r"In the end [A-Z][a-z]+ has (\d+) [a-z]+\. What is that certain number\?$")
# Sample scenarios, one draw from 20 (by hash): 60% direct, 10% error-and-fix, 10% wrong,
# 5% call-limit loop, 10% no code, 5% no answer.
KINDS = (
    ("direct",) * 12 + ("error_fix",) * 2 + ("wrong",) * 2 + ("loop",) + ("no_code",) * 2
    + ("no_answer",)
)  # fmt: skip


def _hash(*parts: object) -> int:
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def seed_rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        a, b, c = 3 + i % 5, 6 + i, 20 + 3 * i  # distinct: every number can be masked
        name, obj = NAMES[i % len(NAMES)], OBJECTS[i % len(OBJECTS)]
        question = (f"{name} packs {a} boxes with {b} {obj} in each box and then finds {c} more "
                    f"{obj}. How many {obj} does {name} have now?")  # fmt: skip
        rows.append({"question": question, "answer": str(a * b + c)})
    return rows


@dataclass(frozen=True)
class Parsed:
    name: str
    obj: str
    values: tuple[str, str, str]  # a, b, c as written (a number or an unknown)
    minus: bool
    double: bool
    total: int | None  # the stated answer of a backward question


def parse(question: str) -> Parsed | None:
    base = _BASE.search(question)
    if base is None:
        return None
    rest = question[base.end() :]
    c = re.search(rf"(?:finds|gives away) (?P<c>{_UNKNOWN})", rest)
    if c is None:
        return None
    total = _FOBAR.search(question) or _BF.search(question)
    return Parsed(
        base["name"], base["obj"], (base["a"], base["b"], c["c"]), "gives away" in rest,
        "doubles" in rest, int(total.group(1)) if total else None,
    )  # fmt: skip


def true_answer(question: str) -> Fraction | None:
    """The answer of any question of the fake's world (None for anything else)."""
    p = parse(question)
    if p is None:
        return None
    known = [None if not v.isdigit() else int(v) for v in p.values]
    sign, factor = (-1 if p.minus else 1), (2 if p.double else 1)
    if None not in known:
        a, b, c = known
        return Fraction((a * b + sign * c) * factor)
    if p.total is None or known.count(None) != 1:
        return None
    a, b, c = known
    rest = Fraction(p.total, factor)
    if c is None:
        return (rest - a * b) * sign
    return (rest - sign * c) / (b if a is None else a)


def extract_question(prompt: str, head: str, tail: str | None = None) -> str:
    text = prompt[prompt.rindex(head) + len(head) :]
    return (text[: text.rindex(tail)] if tail else text).strip()


def question_reply(task: str, prompt: str) -> str:
    if task == "rephrase":
        q = extract_question(prompt, "Question to rephrase:\n")
        p = parse(q)
        assert p is not None, q
        a, b, c = p.values
        return (f"Rephrased question: {p.name} fills {a} boxes, putting {b} {p.obj} into each "
                f"one, and afterwards finds {c} more {p.obj}. What is the total number of "
                f"{p.obj} {p.name} has now?")  # fmt: skip
    if task in ("alter_expression", "alter_harder"):
        q = extract_question(prompt, "Original question:\n")
        p = parse(q)
        assert p is not None, q
        if task == "alter_harder":
            return f"New question: {q} Then {p.name} doubles the number of {p.obj}."
        a, b, c = p.values
        return (f"New question: {p.name} packs {int(a) + 1} boxes with {b} {p.obj} in each box "
                f"and then gives away {c} of the {p.obj}. How many {p.obj} does {p.name} have "
                "now?")  # fmt: skip
    q = extract_question(prompt, "Backward question:\n")
    body, answer = q.split("\nIf we know the answer to the above question is ")
    letter = q.rsplit("unknown variable ", 1)[1].rstrip("?")
    body = re.sub(rf"\b{letter}\b", CERTAIN, body)
    p = parse(body)
    assert p is not None, body
    total = answer.split(",")[0]
    body = body.rsplit(" How many", 1)[0]
    return f"New question: {body} In the end {p.name} has {total} {p.obj}. What is that certain number?"


def plan_sample(question: str, seed: int | None) -> str:
    """The scenario of the sample sent ``seed`` for ``question`` (see module docstring)."""
    return KINDS[_hash("sample", question, seed) % len(KINDS)]


def code_value(question: str, seed: int | None, kind: str) -> Fraction:
    """The value the sample's (final) code prints."""
    truth = true_answer(question)
    assert truth is not None, question
    if "doubles" in question:  # confused by harder variants
        truth += (seed or 0) % 3
    return truth + 1 if kind == "wrong" else truth


def _program(value: Fraction, broken: bool) -> str:
    expr = f"Fraction({value.numerator}, {value.denominator})"
    lines = ["from fractions import Fraction", f"result = {expr}"]
    if broken:
        lines.append("result = result / (len('') * 0)")
    lines.append("print(result)")
    return "```python\n" + "\n".join(lines) + "\n```"


def solve_reply(request: Mapping[str, Any]) -> str:
    messages = request["messages"]
    prompt = messages[0]["content"]
    question = extract_question(prompt, "Problem:\n", "\nSolution:")
    seed = request.get("seed")
    kind = plan_sample(question, seed)
    turn = sum(m["role"] == "assistant" for m in messages)
    if TASK_MARKERS["solve_cot"] in prompt or kind == "no_code":
        return f"Multiply, then add or subtract.\n$\\boxed{{{true_answer(question)}}}$"
    if kind == "no_answer":
        return "I am not sure how to finish this problem."
    fake_output = "\n```output\n999\n```\nSo the answer is $\\boxed{999}$."
    if kind == "loop":
        return f"Step {turn + 1}: compute a part.\n```python\nprint({turn + 1})\n```{fake_output}"
    value = code_value(question, seed, kind)
    if turn == 0:
        program = _program(value, broken=kind == "error_fix")
        return f"Compute the boxes' contents first, then the rest.\n{program}{fake_output}"
    last = messages[-1]["content"]
    if "Error" in last:
        return f"I divided by zero by mistake; here is the fixed code.\n{_program(value, False)}"
    output = last.split("```output\n", 1)[1].split("\n```", 1)[0]
    return f"The program printed {output}.\n$\\boxed{{{output}}}$"


def mumath_reply(request_json: Mapping[str, Any], index: int = 0) -> str:
    del index
    prompt = request_json["messages"][0]["content"]
    task = next((t for t, marker in TASK_MARKERS.items() if marker in prompt), None)
    if task is None:
        raise ValueError(f"not a MuMath prompt: {prompt[:100]!r}")
    if task.startswith("solve"):
        return solve_reply(request_json)
    return question_reply(task, prompt)
