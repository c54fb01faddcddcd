"""Draw Goat-style arithmetic items, reproducibly: the same (seed, shard, count, settings)
always gives the same items, whatever machine or worker draws them.

Operands: a digit length drawn uniformly from its range, then a value uniformly among the
numbers of that length (so values are log-uniform and long numbers are as common as short
ones). Tasks: ``add``/``sub`` (both operands up to ``digits.add_sub``), ``mul_n1`` (up to
``digits.mul_n1`` digits times 2..9, either order), ``mul_nm`` (two operands of 2 to
``digits.mul_nm`` digits), ``div_n1`` (up to ``digits.div_n1`` digits divided by 2..9) and
``div_nm`` (a divisor of 2 to ``digits.div_nm_divisor`` digits, a dividend of at least as many
digits, at most ``digits.div_nm_dividend``). Answers are computed with Python's exact
integers. This module does no I/O and knows nothing of records or Ray.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from orchestrator.core.records import content_hash

from . import formats
from .config import ArithmeticConfig


@dataclass(frozen=True)
class Item:
    task: str
    a: int
    b: int
    question: str
    solution: str
    answer: str


def operand(rng: random.Random, max_digits: int, min_digits: int = 1) -> int:
    digits = rng.randint(min_digits, max_digits)
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(low, 10**digits - 1)


def operands(task: str, cfg: ArithmeticConfig, rng: random.Random) -> tuple[int, int]:
    d = cfg.digits
    if task in ("add", "sub"):
        return operand(rng, d.add_sub), operand(rng, d.add_sub)
    if task == "mul_n1":
        a, b = operand(rng, d.mul_n1), rng.randint(2, 9)
        return (a, b) if rng.random() < 0.5 else (b, a)
    if task == "mul_nm":
        return operand(rng, d.mul_nm, 2), operand(rng, d.mul_nm, 2)
    if task == "div_n1":
        return operand(rng, d.div_n1), rng.randint(2, 9)
    if task == "div_nm":
        divisor = operand(rng, min(d.div_nm_divisor, d.div_nm_dividend), 2)
        return operand(rng, d.div_nm_dividend, len(str(divisor))), divisor
    raise ValueError(f"unknown arithmetic task {task!r}")


def make_item(task: str, cfg: ArithmeticConfig, rng: random.Random) -> Item:
    a, b = operands(task, cfg, rng)
    question = formats.instruction(task, a, b, cfg.noise, rng)
    return Item(task, a, b, question, formats.solution(task, a, b), formats.answer(task, a, b))


def generate_shard(cfg: ArithmeticConfig, shard: int, count: int) -> list[Item]:
    """The ``count`` items of shard ``shard`` under ``cfg`` (its ``size`` does not matter)."""
    rng = random.Random(int(content_hash("arithmetic", cfg.seed, shard), 16))
    weighted = cfg.tasks.items()
    tasks = rng.choices([n for n, _ in weighted], weights=[w for _, w in weighted], k=count)
    return [make_item(task, cfg, rng) for task in tasks]
