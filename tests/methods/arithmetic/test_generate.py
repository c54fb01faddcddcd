"""The generator: exact answers over 20k items, step lines that hold, reproducibility."""

from __future__ import annotations

from collections import Counter

from orchestrator.methods.arithmetic.config import ArithmeticConfig
from orchestrator.methods.arithmetic.formats import long_division_steps, multiplication_steps
from orchestrator.methods.arithmetic.generate import generate_shard
from tests.methods.arithmetic.checks import check_solution, expected_answer, read_question

CFG = ArithmeticConfig()


def test_20k_items_are_exact_and_their_steps_hold() -> None:
    items = [it for shard in range(20) for it in generate_shard(CFG, shard, 1000)]
    assert len(items) == 20_000
    for it in items:
        op, a, b = read_question(it.question)  # from the text, not from the generator
        assert (op, a, b) == (it.task.split("_")[0], it.a, it.b), it.question
        assert it.answer == expected_answer(op, a, b), it.question
        check_solution(it.solution, op, a, b, it.answer)
    tasks = Counter(it.task for it in items)
    assert set(tasks) == {"add", "sub", "mul_n1", "mul_nm", "div_n1", "div_nm"}
    assert min(tasks.values()) > 20_000 / 6 * 0.9
    # digit lengths of additions are uniform over 1..16 (values log-uniform)
    lengths = Counter(len(str(it.a)) for it in items if it.task == "add")
    assert set(lengths) == set(range(1, 17))
    assert max(lengths.values()) < 1.6 * min(lengths.values())
    # limits hold; multi-digit tasks really are multi-digit
    assert max(len(str(it.a)) for it in items if it.task == "mul_nm") == 8
    assert all(len(str(it.b)) >= 2 for it in items if it.task in ("mul_nm", "div_nm"))
    assert any(it.answer.startswith("-") for it in items if it.task == "sub")
    assert any(" R " in it.answer for it in items) and any(
        " R " not in it.answer for it in items if it.task == "div_n1"
    )
    # instruction noise: symbol variants, word forms, spacing
    questions = [it.question for it in items]
    for marker in (" x ", "×", "÷", "plus", "multiplied by", "Subtract", "+"):
        assert any(marker in q for q in questions), marker
    assert any(f"{it.a}+{it.b}" in it.question for it in items if it.task == "add")


def test_reproducible_from_the_seed_and_independent_of_size() -> None:
    assert generate_shard(CFG, 3, 500) == generate_shard(CFG, 3, 500)
    bigger = CFG.model_copy(update={"size": 10})
    assert generate_shard(bigger, 3, 500) == generate_shard(CFG, 3, 500)
    assert generate_shard(CFG, 3, 500) != generate_shard(CFG, 4, 500)
    other = CFG.model_copy(update={"seed": 1})
    assert generate_shard(other, 3, 500) != generate_shard(CFG, 3, 500)


def test_step_formats() -> None:
    assert multiplication_steps(397, 4429) == (
        "397 * 4429 = 4429 * (300 + 90 + 7)\n"
        "= 4429 * 300 + 4429 * 90 + 4429 * 7\n"
        "= 1328700 + 398610 + 31003\n"
        "= 1727310 + 31003\n"
        "= 1758313"
    )
    assert multiplication_steps(400, 4429) == "400 * 4429 = 1771600"
    assert long_division_steps(8914, 64) == (
        "8914 - 64 * 100 = 8914 - 6400 = 2514\n"
        "2514 - 64 * 30 = 2514 - 1920 = 594\n"
        "594 - 64 * 9 = 594 - 576 = 18\n"
        "Therefore, 8914 / 64 = 139 R 18"
    )
    assert (
        long_division_steps(6400, 64)
        == "6400 - 64 * 100 = 6400 - 6400 = 0\nTherefore, 6400 / 64 = 100"
    )


def test_the_checks_catch_wrong_items() -> None:
    import pytest

    item = generate_shard(CFG.model_copy(update={"tasks": {"mul_nm": 1, "add": 0, "sub": 0,
                          "mul_n1": 0, "div_n1": 0, "div_nm": 0}}), 0, 1)[0]  # fmt: skip
    op, a, b = read_question(item.question)
    wrong = item.solution.replace("= ", "= 1", 1)  # one step line no longer holds
    with pytest.raises(AssertionError):
        check_solution(wrong, op, a, b, item.answer)
    with pytest.raises(AssertionError):
        check_solution(item.solution, op, a, b, str(int(item.answer) + 1))
