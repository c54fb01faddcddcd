"""Independent checks of arithmetic items: read the question's operands and operator back
from its text, recompute the answer with Python integers, and evaluate every step line."""

from __future__ import annotations

import re

SYMBOL_OPS = {"+": "add", "plus": "add", "-": "sub", "minus": "sub", "*": "mul", "x": "mul",
              "×": "mul", "times": "mul", "multiplied by": "mul", "/": "div", "÷": "div",
              "divided by": "div", "added to": "add"}  # fmt: skip
SENTENCE_OPS = [("sum of", "add"), ("Add ", "add"), ("Subtract", "sub"), ("take", "sub"),
                ("product of", "mul"), ("Multiply", "mul"), ("Divide", "div"),
                ("go into", "div")]  # fmt: skip
REVERSED = ("added to", "Subtract", "take", "go into")  # second number written first
_EXPR = re.compile(r"^[-0-9+*() ]+$")


def read_question(question: str) -> tuple[str, int, int]:
    """(operator, a, b) with the answer meant to be ``a <op> b``."""
    numbers = [(m.start(), m.end(), int(m.group())) for m in re.finditer(r"\d+", question)]
    assert len(numbers) == 2, question
    (_, end0, x), (start1, _, y) = numbers
    between = question[end0:start1].strip()
    op = SYMBOL_OPS.get(between)
    if op is None:
        op = next(o for key, o in SENTENCE_OPS if key in question)
    if any(key in question for key in REVERSED):
        x, y = y, x
    return op, x, y


def expected_answer(op: str, a: int, b: int) -> str:
    if op == "div":
        q, r = divmod(a, b)
        return f"{q} R {r}" if r else str(q)
    return str({"add": a + b, "sub": a - b, "mul": a * b}[op])


def check_solution(solution: str, op: str, a: int, b: int, answer: str) -> None:
    """Every '='-joined expression is equal; the last one is the answer."""
    lines = solution.split("\n")
    last = lines[-1].removeprefix("Therefore, ")
    assert last.rsplit("= ", 1)[1] == answer, (solution, answer)
    if op == "div":
        q, r = divmod(a, b)
        assert last == (f"{a} / {b} = {q} R {r}" if r else f"{a} / {b} = {q}")
        lines = lines[:-1]
    symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[op]
    first = f"{a} - {b} * " if op == "div" and lines else f"{a} {symbol} {b} = "
    assert solution.startswith(first), solution
    for line in lines:
        parts = [p.strip() for p in line.removeprefix("= ").split("=")]
        if parts == [""]:
            continue
        values = []
        for part in parts:
            assert _EXPR.match(part), line
            values.append(eval(part))  # noqa: S307 - digits and + - * ( ) only
        assert len(set(values)) == 1, line
        if op == "mul":
            assert values[0] == a * b
