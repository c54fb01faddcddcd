"""Answer verification: equality table, extraction, majority vote, the hard time limit (also off
the main thread and inside an async Ray actor, where math-verify's own signal-based timeout
cannot work), and the gold/format filter stages."""

from __future__ import annotations

import threading
import time

import pytest
import ray

from orchestrator.core.records import Record
from orchestrator.core.stage import run_chain
from orchestrator.quality.format_filters import FormatSettings, RequiredStructure, SolutionSize
from orchestrator.quality.verify import (
    SYMBOLIC,
    VerifyAgainstGold,
    VerifySettings,
    answers_equal,
    extract_final_answer,
    majority_vote,
)

EQUAL = [
    ("1,000", "1000"), ("$1,234,567.00", "1234567"), ("18 dollars", "18"), ("\\$18", "18.0"),
    ("50%", "0.5"), ("50\\%", "50"), ("3/4", "0.75"), ("\\frac{3}{4}", ".75"), ("-\\dfrac{1}{2}", "-0.5"),
    ("2\\frac{1}{4}", "9/4"), ("\\boxed{\\frac{1}{2}}", "0.5"), ("1e3", "1000"), ("5\\text{ cm}", "5"),
    ("x = 5", "5"), ("90^\\circ", "90"), ("(1,2)", "\\left( 1, 2 \\right)"), ("\\{1,2\\}", "\\{2,1\\}"),
    ("-2, 3", "3, -2"), ("x^2+2x+1", "(x+1)^2"), ("\\sqrt{2}/2", "\\frac{\\sqrt2}{2}"),
    ("\\frac{\\pi}{3}", "\\pi/3"), ("0.3333333", "1/3"),
]  # fmt: skip
UNEQUAL = [
    ("50%", "5"), ("1,2", "12"), ("[1,2)", "(1,2)"), ("(1,2)", "(2,1)"), ("\\pi", "3.14159"),
    ("0.3333", "1/3"), ("x^2", "2x"), ("7", "-7"), ("\\{1,2\\}", "\\{1,3\\}"), ("", "0"), ("3", "3,0"),
]  # fmt: skip
SLOW = ("\\sin(x)^{40}\\cos(x)^{40}", "\\sin(2x)^{40}/2^{40}")  # > 20 s in sympy (measured)


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal_pairs(a: str, b: str) -> None:
    assert answers_equal(a, b) and answers_equal(b, a)


@pytest.mark.parametrize(("a", "b"), UNEQUAL)
def test_unequal_pairs(a: str, b: str) -> None:
    assert not answers_equal(a, b) and not answers_equal(b, a)


def test_tolerance_is_relative() -> None:
    assert answers_equal("100000", "100000.05", rel_tol=1e-6)
    assert not answers_equal("1", "1.00001", rel_tol=1e-6)
    assert answers_equal("1", "1.00001", rel_tol=1e-4)


def test_pathological_expression_returns_within_the_limit() -> None:
    assert answers_equal("x+1", "1+x")  # child started and warm
    restarts = SYMBOLIC.restarts
    start = time.monotonic()
    assert not answers_equal(*SLOW, timeout_s=1.0)
    assert time.monotonic() - start < 1.5
    assert SYMBOLIC.restarts == restarts + 1
    assert answers_equal("x^2-1", "(x-1)(x+1)")  # a fresh child takes over


def test_symbolic_works_off_the_main_thread() -> None:
    results: list[bool] = []
    worker = threading.Thread(
        target=lambda: results.append(answers_equal("2\\sqrt{2}", "\\sqrt{8}"))
    )
    worker.start()
    worker.join(60)
    assert results == [True]


@ray.remote
class AsyncChecker:
    """An async actor, like the generation worker: its methods run off the main thread."""

    async def check(self, a: str, b: str) -> tuple[bool, bool, str]:
        from math_verify import parse, verify

        try:
            verify(parse(f"${a}$"), parse(f"${b}$"))
            direct = "ok"
        except ValueError as err:  # math-verify refuses: signal.alarm needs the main thread
            direct = type(err).__name__
        on_main = threading.current_thread() is threading.main_thread()
        return on_main, answers_equal(a, b), direct


def test_inside_an_async_ray_actor(ray_local: None) -> None:
    actor = AsyncChecker.remote()
    on_main, equal, direct = ray.get(actor.check.remote("x^2+2x+1", "(x+1)^2"), timeout=120)
    ray.kill(actor)
    assert (on_main, equal, direct) == (False, True, "ValueError")


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Step 1 ... so we get \\boxed{\\frac{1}{2}}. Then \\boxed{3}", "3"),
        ("He pays 5 * 3 = 15.\n#### 15", "15"),
        ("So x = 4. The answer is 42.", "42"),
        ("**Final Answer:** $\\frac{7}{2}$\n", "$\\frac{7}{2}$"),
        ("The final answer is 3.5.", "3.5"),
        ("No conclusion here", None),
        ("", None),
    ],
)
def test_extract_final_answer(text: str, answer: str | None) -> None:
    assert extract_final_answer(text) == answer


def test_majority_vote() -> None:
    assert majority_vote(["42", "42.0", "41", "$42$", None], 0.5) == ("42", 0.6)
    assert majority_vote(["1", "2", "3"], 0.5) == (None, pytest.approx(1 / 3))
    assert majority_vote(["1/2", "0.5", "2", "2"], 0.5) == ("1/2", 0.5)  # tie: first cluster
    assert majority_vote([None, None], 0.1) == (None, 0.0)
    assert majority_vote([], 0.5) == (None, 0.0)


def test_verify_against_gold_stage() -> None:
    def rec(answer: str | None, gold: str | None) -> Record:
        r = Record.seed(f"q {answer} {gold}", gold, "t")
        r.answer = answer
        return r

    good, bad, nogold, noanswer = (
        rec("1,000", "1000"),
        rec("7", "8"),
        rec("3", None),
        rec(None, "2"),
    )
    stage = VerifyAgainstGold()
    assert run_chain([stage], [good, bad, nogold, noanswer]) == [good, nogold]
    assert [r.reject_reason for r in stage.rejected] == ["verify:wrong_answer", "verify:no_answer"]
    strict = VerifyAgainstGold(require_gold=True)
    assert run_chain([strict], [rec("3", None)]) == []
    assert strict.rejected[0].reject_reason == "verify:no_gold"
    built = VerifySettings(require_gold=True, timeout_s=1.0).stage()
    assert (built.require_gold, built.timeout_s) == (True, 1.0)


def test_format_filters() -> None:
    def rec(question: str, code: str | None) -> Record:
        r = Record.seed(question, None, "t")
        r.code = code
        return r

    ok = rec(
        "Sam has 3 apples and buys 4 more. How many now?",
        "def f():\n    result = 7\n    return result",
    )
    short = rec("Too short?", ok.code)
    no_return = rec(ok.question + " Really?", "def f():\n    print(7)")
    long_code = rec(ok.question + " Sure?", ok.code + "\n" + "x = 1\n" * 300)
    stages = FormatSettings(
        question_min_words=5, solution_max_tokens=200, required=["return result"]
    ).build()
    assert run_chain(stages, [ok, short, no_return, long_code]) == [ok]
    reasons = [r.reject_reason for s in stages for r in s.rejected]
    assert sorted(reasons) == ["format:missing_structure", "format:question_too_short",
                               "format:solution_too_long"]  # fmt: skip
    required = RequiredStructure(["return result"])
    run_chain([required], [rec("q", "pass")])
    assert required.rejected[0].reject_detail == "code lacks 'return result'"
    assert run_chain([SolutionSize(min_tokens=1)], [rec("q", None)]) == []
    assert FormatSettings().build() == []
