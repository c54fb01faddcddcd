"""How Goat-style arithmetic items read: instructions with surface noise, and solutions.

Solutions follow Goat (Liu & Low 2023): addition, subtraction, n x 1 multiplication and
n / 1 division are answered directly; n x m multiplication is decomposed over the place values
of the operand with fewer digits and summed term by term; n / m division is long division,
one line per non-zero quotient digit, ending "Therefore, a / b = q R r" (no "R" part when the
remainder is 0). Every "=" in a solution joins equal integer expressions (the tests evaluate
them). Instructions vary the wording ("What is", "Compute", ...), write operators as symbols
or words, use "x"/"×" for "*" and "÷" for "/", and change the spacing, as ``Noise`` says.
This module draws nothing itself: the caller passes the random generator.
"""

from __future__ import annotations

import random

from .config import Noise

SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
TIMES_SYMBOLS = ("x", "×")
WORDS = {
    "add": ("plus", "added to"),
    "sub": ("minus",),
    "mul": ("times", "multiplied by"),
    "div": ("divided by",),
}
EXPRESSION_TEMPLATES = (
    "{e}", "{e} = ?", "{e}=", "What is {e}?", "Compute {e}.", "Calculate {e}.", "Solve {e}",
    "Find the value of {e}.", "Evaluate {e}.", "What's {e}?", "Please calculate {e}.",
    "Determine {e}.", "{e}\nAnswer:",
)  # fmt: skip
SENTENCES = {
    "add": ("What is the sum of {a} and {b}?", "Add {a} and {b}."),
    "sub": ("Subtract {b} from {a}.", "What do you get if you take {b} away from {a}?"),
    "mul": ("What is the product of {a} and {b}?", "Multiply {a} by {b}."),
    "div": ("Divide {a} by {b}.", "How many times does {b} go into {a}, and what is left?"),
}
DIVISION_SUFFIX = " Give the quotient and the remainder."


def operator_of(task: str) -> str:
    return task.split("_")[0]


def instruction(task: str, a: int, b: int, noise: Noise, rng: random.Random) -> str:
    """One instruction asking for ``a <op> b``."""
    op = operator_of(task)
    if rng.random() < noise.word_form:
        if rng.random() < 0.5:
            text = rng.choice(SENTENCES[op]).format(a=a, b=b)
        else:
            word = rng.choice(WORDS[op])
            x, y = (b, a) if word == "added to" else (a, b)
            text = rng.choice(EXPRESSION_TEMPLATES).format(e=f"{x} {word} {y}")
    else:
        symbol = SYMBOLS[op]
        if op == "mul" and rng.random() < noise.x_for_times:
            symbol = rng.choice(TIMES_SYMBOLS)
        elif op == "div" and rng.random() < noise.x_for_times:
            symbol = "÷"
        left, right = " ", " "
        if rng.random() < noise.spacing:
            left, right = rng.choice([("", ""), ("  ", " "), (" ", ""), ("", " ")])
        text = rng.choice(EXPRESSION_TEMPLATES).format(e=f"{a}{left}{symbol}{right}{b}")
    if op == "div" and text.endswith((".", "?")) and rng.random() < 0.3:
        text += DIVISION_SUFFIX
    return text


def direct(task: str, a: int, b: int) -> str:
    op = operator_of(task)
    if op == "div":
        return division_result(a, b)
    value = {"add": a + b, "sub": a - b, "mul": a * b}[op]
    return f"{a} {SYMBOLS[op]} {b} = {value}"


def division_result(a: int, b: int) -> str:
    q, r = divmod(a, b)
    return f"{a} / {b} = {q} R {r}" if r else f"{a} / {b} = {q}"


def place_terms(n: int) -> list[int]:
    """Non-zero place-value terms of ``n``, largest first: 4029 -> [4000, 20, 9]."""
    digits = str(n)
    return [int(d) * 10 ** (len(digits) - 1 - i) for i, d in enumerate(digits) if d != "0"]


def multiplication_steps(a: int, b: int) -> str:
    """a * b = big * (t1 + t2 + ...) = big * t1 + ... = p1 + p2 + ... = ... = result."""
    big, small = (a, b) if len(str(a)) >= len(str(b)) else (b, a)
    terms = place_terms(small)
    if len(terms) <= 1:
        return f"{a} * {b} = {a * b}"
    products = [big * t for t in terms]
    lines = [
        f"{a} * {b} = {big} * ({' + '.join(map(str, terms))})",
        "= " + " + ".join(f"{big} * {t}" for t in terms),
        "= " + " + ".join(map(str, products)),
    ]
    total, rest = products[0], products[1:]
    while rest:
        total += rest.pop(0)
        lines.append("= " + " + ".join(map(str, [total, *rest])))
    return "\n".join(lines)


def long_division_steps(a: int, b: int) -> str:
    """One "r - b * t = r - p = r'" line per non-zero quotient digit, then the result."""
    q, r = divmod(a, b)
    lines, remainder = [], a
    for term in place_terms(q) if q else []:
        product = b * term
        lines.append(
            f"{remainder} - {b} * {term} = {remainder} - {product} = {remainder - product}"
        )
        remainder -= product
    assert remainder == r
    if not lines:  # the divisor is larger than the dividend: nothing to subtract
        return division_result(a, b)
    lines.append("Therefore, " + division_result(a, b))
    return "\n".join(lines)


def solution(task: str, a: int, b: int) -> str:
    if task == "mul_nm":
        return multiplication_steps(a, b)
    if task == "div_nm":
        return long_division_steps(a, b)
    return direct(task, a, b)


def answer(task: str, a: int, b: int) -> str:
    """The exact final answer: an integer, or "q R r" for a division with a remainder."""
    op = operator_of(task)
    if op == "div":
        q, r = divmod(a, b)
        return f"{q} R {r}" if r else str(q)
    return str({"add": a + b, "sub": a - b, "mul": a * b}[op])
