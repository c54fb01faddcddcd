"""Tests for TinyGSM reply parsing, program normalisation, the prompt templates, and the fake
teacher in ``tests/support/tinygsm_teacher.py`` (its replies must parse back as planned).

These tests execute only programs written here or by the fake teacher; they do not start Ray,
a server or a sandbox.
"""

from __future__ import annotations

import ast
import functools
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.core.prompts import load_template
from orchestrator.core.records import normalize_question
from orchestrator.methods.tinygsm.function_form import ProgramFormatError, to_tinygsm_function
from orchestrator.methods.tinygsm.replies import parse_one_step, parse_program, parse_questions
from tests.support import tinygsm_teacher as teacher

EOQ = "<|endofquestion|>"
EOP = "<|endofprogram|>"

# Seeds written for these tests (not taken from GSM8K).
SEEDS = [
    SimpleNamespace(
        question="A florist has 36 roses and puts them into vases of 4. She sells 5 vases. "
        "How many vases are left?",
        gold_answer="4",
    ),
    SimpleNamespace(
        question="Marco walks 3 km every morning and 2 km every evening. How far does he walk "
        "in 7 days?",
        gold_answer=None,
    ),
    SimpleNamespace(
        question="A train has 12 carriages with 48 seats each. If 130 seats are empty, how "
        "many passengers are seated?",
        gold_answer="446",
    ),
    SimpleNamespace(question="How many legs do some spiders have in total?", gold_answer=None),
]


def run_function(source: str) -> Any:
    """Exec a stored-form function and return what ``simple_math_problem()`` returns."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<program>", "exec"), namespace)
    return namespace["simple_math_problem"]()


def docstring_of(source: str) -> str | None:
    fn = ast.parse(source).body[0]
    assert isinstance(fn, ast.FunctionDef)
    return ast.get_docstring(fn)


def render(name: str, **variables: Any) -> str:
    return load_template(f"tinygsm/{name}").render(**variables)


# --- parse_one_step -----------------------------------------------------------------------


def test_one_step_clean_reply() -> None:
    text = (
        "Problem 1: Ann has 3 pens and buys 4 more. How many pens does she have?\n"
        f"{EOQ}\n"
        "# Pens Ann has\npens = 3\n# Pens bought\nbought = 4\nresult = pens + bought\n"
        f"{EOP}\n"
        "Problem 2: A box holds 6 eggs. How many eggs are in 5 boxes?\n"
        f"{EOQ}\n"
        "eggs_per_box = 6\nboxes = 5\nresult = eggs_per_box * boxes\n"
        f"{EOP}\n"
    )
    result = parse_one_step(text)
    assert result.errors == []
    assert [q for q, _ in result.items] == [
        "Ann has 3 pens and buys 4 more. How many pens does she have?",
        "A box holds 6 eggs. How many eggs are in 5 boxes?",
    ]
    assert result.items[0][1] == (
        "# Pens Ann has\npens = 3\n# Pens bought\nbought = 4\nresult = pens + bought"
    )
    answers = [run_function(to_tinygsm_function(q, p)) for q, p in result.items]
    assert answers == [7, 30]


def test_one_step_tolerates_noise() -> None:
    text = (
        "Sure! Here are three new problems with programs:\n\n"
        "1.   Ann has 3 pens\n and buys 4 more.   How many pens does she have?\n"
        f"{EOQ}\n"
        "```python\npens = 3\nbought = 4\nresult = pens + bought\n```\n"
        f"{EOP}\n\n"
        "**Problem 2:** A rope is 12.5 m long. It is cut in half. How long is each piece?\n"
        f"   {EOQ}   \n"
        "Solution:\n```py\nrope = 12.5\nresult = rope / 2\n```\n"
        f"{EOP}\n"
        "Question: A shop sells 8 hats a day. How many hats does it sell in 3 days?\n"
        f"{EOQ}\n"
        "```python\nhats = 8\ndays = 3\nresult = hats * days\n"
        f"{EOP}\n```\n\n"
        "I hope these problems are useful!"
    )
    result = parse_one_step(text)
    assert result.errors == []
    questions = [q for q, _ in result.items]
    assert questions == [
        "Ann has 3 pens and buys 4 more. How many pens does she have?",
        "A rope is 12.5 m long. It is cut in half. How long is each piece?",
        "A shop sells 8 hats a day. How many hats does it sell in 3 days?",
    ]
    answers = [run_function(to_tinygsm_function(q, p)) for q, p in result.items]
    assert answers == [7, 6.25, 24]


def test_one_step_truncated_last_pair_is_dropped() -> None:
    complete = f"Problem 1: Ann has 3 pens. How many pens?\n{EOQ}\nresult = 3\n{EOP}\n"
    cut_in_program = complete + f"Problem 2: Bo has 5 cups. How many?\n{EOQ}\ncups = 5\nresu"
    result = parse_one_step(cut_in_program)
    assert [q for q, _ in result.items] == ["Ann has 3 pens. How many pens?"]
    assert result.errors == ["truncated"]

    cut_in_question = complete + "Problem 2: Bo has 5 cu"
    result = parse_one_step(cut_in_question)
    assert len(result.items) == 1
    assert result.errors == ["truncated"]

    only_cut = f"Problem 1: Bo has 5 cups. How many?\n{EOQ}\n```python\ncups = 5\n"
    result = parse_one_step(only_cut)
    assert result.items == []
    assert result.errors == ["truncated"]


@pytest.mark.parametrize(
    "text",
    ["", "   \n\n", "I'm sorry, I cannot write those problems.", "Here you go:\n\nThanks!"],
)
def test_one_step_nothing_usable(text: str) -> None:
    result = parse_one_step(text)
    assert result.items == []
    assert result.errors == ["no_pairs"]


def test_one_step_marker_problems() -> None:
    # Second pair lost its question marker but has a fence: recovered. Third has neither.
    text = (
        f"Problem 1: Ann has 3 pens. How many pens?\n{EOQ}\nresult = 3\n{EOP}\n"
        f"Problem 2: Bo has 5 cups. How many cups?\n```python\nresult = 5\n```\n{EOP}\n"
        f"Problem 3: Cy has 2 dogs. How many dogs?\nThe answer is 2.\n{EOP}\n"
    )
    result = parse_one_step(text)
    assert [q for q, _ in result.items] == [
        "Ann has 3 pens. How many pens?",
        "Bo has 5 cups. How many cups?",
    ]
    assert result.errors == ["missing_marker"]


def test_one_step_empty_question_and_missing_program() -> None:
    text = (
        f"Problem 1:\n{EOQ}\nresult = 3\n{EOP}\n"
        f"Problem 2: Bo has 5 cups. How many cups?\n{EOQ}\n"
        f"Problem 3: Cy has 2 dogs. How many dogs?\n{EOQ}\nresult = 2\n{EOP}\n"
        f"Problem 4: Di has 4 cats. How many cats?\n{EOQ}\n```python\n```\n{EOP}\n"
    )
    result = parse_one_step(text)
    assert result.items == [("Cy has 2 dogs. How many dogs?", "result = 2")]
    assert sorted(result.errors) == ["empty_question", "missing_program", "missing_program"]


def test_one_step_messy_realistic_reply() -> None:
    text = (
        "Here is a new problem:\nJo has 6 kites and loses 2. How many kites are left?\n"
        f"{EOQ}\nkites = 6\nlost = 2\nresult = kites - lost\n{EOP}\n"
        "**Problem 2**\nQuestion: Jo buys:\n1. 3 apples\n2. 4 pears\nHow many fruits?\n"
        f"{EOQ}\nExplanation\napples = 3\npears = 4\nresult = apples + pears\n"
        f"Answer: 7\n{EOP}\n"
        "### Problem 3\n\nA tank holds 50 L. It is half full. How many litres are in it?\n"
        f"{EOQ}\nThe tank holds 50 litres.\ntank = 50\nresult = tank / 2\n"
        f"This gives 25 litres.\n{EOP}\n"
    )
    result = parse_one_step(text)
    assert result.errors == []
    assert [q for q, _ in result.items] == [
        "Jo has 6 kites and loses 2. How many kites are left?",
        "Jo buys: 1. 3 apples 2. 4 pears How many fruits?",
        "A tank holds 50 L. It is half full. How many litres are in it?",
    ]
    answers = [run_function(to_tinygsm_function(q, p)) for q, p in result.items]
    assert answers == [4, 7, 25]


def test_one_step_keeps_decimal_at_line_start() -> None:
    text = f"A rope is\n12. 5 metres? No: it is 7 m. How long?\n{EOQ}\nresult = 7\n{EOP}"
    # "12. " at a line start is read as a list label (a real model writes "12.5", not "12. 5").
    assert parse_one_step(text).items[0][0] == "5 metres? No: it is 7 m. How long?"
    text = f"Problem 1: A rope is\n12.5 metres long. How long?\n{EOQ}\nresult = 12.5\n{EOP}"
    assert parse_one_step(text).items[0][0] == "A rope is 12.5 metres long. How long?"


# --- parse_questions ----------------------------------------------------------------------


def test_questions_with_markers_and_numbering() -> None:
    text = (
        "Here are 4 new problems:\n\n"
        f"Problem 1: Ann has 3 pens. How many pens?\n{EOQ}\n"
        f"2. Bo has 5 cups.\nHow many cups?\n{EOQ}\n\n"
        f"**Question 3:** Cy has 2 dogs. How many dogs?\n{EOQ}\n"
        "Problem 4: Di has 4 cats. How many cats?"
    )
    result = parse_questions(text)
    assert result.items == [
        "Ann has 3 pens. How many pens?",
        "Bo has 5 cups. How many cups?",
        "Cy has 2 dogs. How many dogs?",
        "Di has 4 cats. How many cats?",  # final marker missing, question complete
    ]
    assert result.errors == []


def test_questions_truncated_empty_and_prose_tail() -> None:
    text = f"1. Ann has 3 pens. How many pens?\n{EOQ}\n{EOQ}\n2. Bo has 5 cu"
    result = parse_questions(text)
    assert result.items == ["Ann has 3 pens. How many pens?"]
    assert result.errors == ["empty_question", "truncated"]

    text = f"1. Ann has 3 pens. How many pens?\n{EOQ}\n\nLet me know if you want more."
    assert parse_questions(text).items == ["Ann has 3 pens. How many pens?"]
    assert parse_questions(text).errors == []


def test_questions_without_markers_fall_back_to_numbering() -> None:
    text = "1. Ann has 3 pens. How many pens?\n2. Bo has 5 cups. How many cups?\n3. Cy has"
    result = parse_questions(text)
    assert result.items == ["Ann has 3 pens. How many pens?", "Bo has 5 cups. How many cups?"]
    assert result.errors == ["truncated"]


@pytest.mark.parametrize("text", ["", "Sorry, I can't help with that."])
def test_questions_nothing_usable(text: str) -> None:
    result = parse_questions(text)
    assert result.items == []
    assert result.errors == ["no_questions"]


# --- parse_program ------------------------------------------------------------------------

FUNCTION = (
    "def simple_math_problem() -> int:\n"
    '    """\n    Ann has 3 pens and buys 4 more. How many pens?\n    """\n'
    "    # Pens at the start\n    pens = 3\n    bought = 4\n    result = pens + bought\n"
    "    return result"
)


@pytest.mark.parametrize(
    "text",
    [
        f"{FUNCTION}\n{EOP}\n",
        f"Here is the program:\n```python\n{FUNCTION}\n```\n{EOP}",
        f"```python\n{FUNCTION}\n```\nThis function adds the pens.",
        f"Sure, here it is:\n{FUNCTION}\n{EOP}\nIt returns 7.",
        f"Program:\n{FUNCTION}\n{EOP}",
        f"Here's the program you asked for:\n\n{FUNCTION}\nIt returns the total.\n{EOP}",
        f"{FUNCTION}\n",  # no marker, but complete
    ],
)
def test_program_forms(text: str) -> None:
    program = parse_program(text)
    assert program is not None
    assert program.strip() == FUNCTION
    assert run_function(to_tinygsm_function("Q with 3 and 4?", program)) == 7


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I am not sure how to solve this.",
        # cut off by the token limit: no marker, no closing fence
        "```python\ndef simple_math_problem() -> int:\n    pens = 3\n    bought = (",
        "def simple_math_problem() -> int:\n    pens = 3\n    bought = 4\n",
    ],
)
def test_program_missing_or_truncated(text: str) -> None:
    assert parse_program(text) is None


def test_program_plain_code_with_marker() -> None:
    program = parse_program(f"pens = 3\nbought = 4\nresult = pens + bought\n{EOP}\n")
    assert program == "pens = 3\nbought = 4\nresult = pens + bought"


# --- to_tinygsm_function ------------------------------------------------------------------


def test_wraps_top_level_code_and_adds_return() -> None:
    program = (
        "# Apples Tom has\napples = 5\n# Apples he buys\nbought = 7\n"
        "result = apples + bought\nprint(result)\n"
    )
    source = to_tinygsm_function("Tom has 5 apples and buys 7. How many?", program)
    assert source == (
        "def simple_math_problem() -> int:\n"
        '    """\n'
        "    Tom has 5 apples and buys 7. How many?\n"
        '    """\n'
        "    # Apples Tom has\n"
        "    apples = 5\n"
        "    # Apples he buys\n"
        "    bought = 7\n"
        "    result = apples + bought\n"
        "    return result\n"
    )
    assert run_function(source) == 12


def test_keeps_existing_function_and_replaces_docstring() -> None:
    program = (
        "import math\n"
        "RATE = 3\n\n"
        "def simple_math_problem() -> int:\n"
        '    """Old text that should go."""\n'
        "    # Boxes and items per box\n"
        "    boxes = 4\n"
        "    result = math.floor(boxes * RATE / 2)\n"
        "    return result\n\n"
        "print(simple_math_problem())\n"
    )
    source = to_tinygsm_function("Four boxes at rate 3, halved?", program)
    assert docstring_of(source) == "Four boxes at rate 3, halved?"
    assert "Old text" not in source
    assert "# Boxes and items per box" in source
    assert "print(" not in source
    assert source.count("return result") == 1
    assert run_function(source) == 6


def test_renames_single_other_function() -> None:
    program = "def solution():\n    total = 6 * 7\n    return total\n\nanswer = solution()\n"
    source = to_tinygsm_function("What is 6 times 7?", program)
    assert source.startswith("def simple_math_problem() -> int:\n")
    assert run_function(source) == 42


def test_called_function_among_helpers_becomes_the_body() -> None:
    program = (
        "import math\n\n"
        "def area(side):\n    return side * side\n\n"
        "def solve(sides=3):\n    # Area of each square, floored after a square root\n"
        "    total = sides * area(4)\n    return math.floor(math.sqrt(total))\n\n"
        "def unused(x):\n    return x\n\n"
        "if __name__ == '__main__':\n    print(solve())\n"
    )
    source = to_tinygsm_function("Three squares of side 4?", program)
    assert "# Area of each square" in source
    assert "__main__" not in source
    assert run_function(source) == 6  # floor(sqrt(48))


def test_call_used_in_later_computation_is_not_driver_code() -> None:
    program = "def f():\n    return 3\n\nx = f()\nresult = x * 2\n"
    assert run_function(to_tinygsm_function("Twice 3?", program)) == 6


def test_helper_function_with_top_level_code_is_wrapped_whole() -> None:
    program = "def price(n):\n    return 3 * n\n\nresult = price(4) + 1\n"
    assert run_function(to_tinygsm_function("Price of 4 plus 1?", program)) == 13


def test_result_assigned_in_branches_and_side_effect_calls_kept() -> None:
    program = (
        "items = []\nitems.append(3)\nitems.append(9)\n"
        "if sum(items) > 10:\n    result = sum(items)\nelse:\n    result = 0\n"
    )
    assert run_function(to_tinygsm_function("Sum 3 and 9?", program)) == 12


def test_existing_return_is_not_duplicated() -> None:
    source = to_tinygsm_function("Q 2?", "x = 2\nreturn x * 5\n")
    assert run_function(source) == 10
    assert "return result" not in source


@pytest.mark.parametrize(
    "question",
    [
        'He wrote """done""" on 3 cards. How many cards?',
        'A path C:\\new\\tab has 2 files and ends with a quote"',
        "Line one has 2 apples.\nLine two asks: how many?",
        "Odd\x00char and \x07bell with 4 items?",
        "Unicode: 5 crêpes cost €3 each; total?",
        'Ends with three quotes """',
        'Ends with a backslash and a quote \\"',
    ],
)
def test_question_is_escaped_in_docstring(question: str) -> None:
    source = to_tinygsm_function(question, "result = 4")
    ast.parse(source)
    assert docstring_of(source) == question
    assert run_function(source) == 4


@pytest.mark.parametrize(
    "program",
    ["result = (3 + 4", "def simple_math_problem(:\n    return 1", "for x in range(3)\n  y = x"],
)
def test_syntax_error_raises(program: str) -> None:
    with pytest.raises(ProgramFormatError) as info:
        to_tinygsm_function("Q?", program)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "program",
    [
        "",
        "   \n",
        "print('hello')",
        '"""Only a docstring."""',
        'def simple_math_problem():\n    """Only a docstring."""\n',
    ],
)
def test_no_body_raises(program: str) -> None:
    with pytest.raises(ProgramFormatError):
        to_tinygsm_function("Q?", program)


def test_odd_layouts_still_produce_valid_functions() -> None:
    cases = {
        "\tx = 4\n\tresult = x * 2\n": 8,  # indented with tabs
        "a = 2; b = 3\nresult = a * b  # product\n": 6,  # statements sharing a line
        "def simple_math_problem(): return 11\n": 11,  # body on the def line
        'note = """two\nlines"""\nresult = len(note.split())\n': 2,  # multi-line string
        "total = (1 +\n         2 +\n         3)\nresult = total\n": 6,  # continuation lines
    }
    for program, expected in cases.items():
        source = to_tinygsm_function("A question with 1 number?", program)
        ast.parse(source)
        assert run_function(source) == expected, program


def test_does_not_execute_the_program() -> None:
    program = "raise SystemExit('ran')\nresult = 1\n"
    source = to_tinygsm_function("Q 1?", program)  # must not raise SystemExit
    assert "raise SystemExit" in source


# --- templates ----------------------------------------------------------------------------

SEED_TEMPLATES = ("one_step", "two_step_questions", "two_step_gsm_ic")


@pytest.mark.parametrize("name", SEED_TEMPLATES)
def test_seed_templates_render(name: str) -> None:
    with_gold = render(name, seed=SEEDS[0], n=7)
    without_gold = render(name, seed=SEEDS[1], n=7)
    assert SEEDS[0].question in with_gold
    assert "The seed's answer is 4;" in with_gold
    assert SEEDS[1].question in without_gold
    assert "The seed's answer" not in without_gold
    for text in (with_gold, without_gold):
        assert "Write exactly 7 new problems" in text
        assert "<|endofquestion|>" in text
        assert "\n\n\n" not in text
        assert teacher.detect_task(text) == name
        assert teacher.extract_n(text) == 7
    assert teacher.extract_seed(with_gold) == SEEDS[0].question
    assert teacher.extract_seed(without_gold) == SEEDS[1].question
    if name == "one_step":
        assert "<|endofprogram|>" in with_gold
        assert "result = " in with_gold


def test_seed_templates_accept_a_mapping_and_numeric_gold() -> None:
    text = render("one_step", seed={"question": "Q with 2 cats?", "gold_answer": 2}, n=3)
    assert "The seed's answer is 2;" in text


def test_program_template_renders() -> None:
    question = "Ann has 3 pens and buys 4 more. How many pens?"
    text = render("two_step_program", question=question)
    assert teacher.detect_task(text) == "two_step_program"
    assert teacher.extract_question(text) == question
    assert "simple_math_problem" in text
    assert "<|endofprogram|>" in text


def test_template_markers_are_unique() -> None:
    for name, marker in teacher.TASK_MARKERS.items():
        source = load_template(f"tinygsm/{name}").source
        assert marker in source
        others = [m for n, m in teacher.TASK_MARKERS.items() if n != name]
        assert not any(m in source for m in others)


def test_few_shot_examples_parse() -> None:
    """The worked examples in the prompts follow the format the parsers read."""
    text = render("one_step", seed=SEEDS[0], n=2)
    example = text.split("Example reply with 2 problems:\n", 1)[1].split("\n\nNow do", 1)[0]
    result = parse_one_step(example)
    assert result.errors == [] and len(result.items) == 2
    answers = [run_function(to_tinygsm_function(q, p)) for q, p in result.items]
    assert answers == [71, 40]

    text = render("two_step_questions", seed=SEEDS[0], n=3)
    example = text.split("Example reply with 3 problems:\n", 1)[1].split("\n\nNow do", 1)[0]
    assert len(parse_questions(example).items) == 3

    text = render("two_step_program", question="Q?")
    example = text.split("Example reply:\n", 1)[1].split("\n\nNow solve", 1)[0]
    program = parse_program(example)
    assert program is not None
    assert run_function(to_tinygsm_function("Q?", program)) == 6


# --- fake teacher -------------------------------------------------------------------------


def one_step_prompt(seed: SimpleNamespace, n: int = teacher.DEFAULT_N) -> str:
    return render("one_step", seed=seed, n=n)


def request(prompt: str) -> dict[str, Any]:
    return {
        "model": "fake",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": prompt},
        ],
    }


def outcome(question: str, program: str) -> tuple[str, Any]:
    """What the engine would see for one parsed item: ("syntax_error", None),
    ("runtime_error", exception name), or ("ok", value)."""
    try:
        source = to_tinygsm_function(question, program)
    except ProgramFormatError:
        return "syntax_error", None
    try:
        return "ok", run_function(source)
    except Exception as err:  # any runtime failure counts
        return "runtime_error", type(err).__name__


@pytest.mark.parametrize("seed", SEEDS)
def test_fake_one_step_reply_parses_as_planned(seed: SimpleNamespace) -> None:
    prompt = one_step_prompt(seed)
    reply = teacher.tinygsm_reply(request(prompt), 3)
    assert reply == teacher.tinygsm_reply(request(prompt), 99)  # index ignored
    plan = teacher.plan_one_step(prompt)
    result = parse_one_step(reply)
    assert result.errors == []
    assert len(result.items) == teacher.DEFAULT_N
    assert sorted(p.kind for p in plan) == sorted(teacher.one_step_kinds(teacher.DEFAULT_N))
    assert sum(p.good for p in plan) == teacher.GOOD_PER_REPLY == 5
    for (question, program), planned in zip(result.items, plan, strict=True):
        assert question == planned.question
        status, value = outcome(question, program)
        if planned.kind == "syntax_error":
            assert status == "syntax_error"
        elif planned.kind == "runtime_error":
            assert (status, value) == ("runtime_error", "ZeroDivisionError")
        elif planned.kind == "non_numeric":
            assert status == "ok" and isinstance(value, str)
        else:
            assert (status, value) == ("ok", planned.answer)
            assert isinstance(value, int) and value > 0
        has_digit = any(c.isdigit() for c in question)
        assert has_digit == (planned.kind != "no_numbers")
        is_short = len(question) <= teacher.TOO_SHORT_MAX_CHARS
        assert is_short == (planned.kind == "too_short")
        assert question.endswith("?")


def test_fake_one_step_shared_question_dedups_across_seeds() -> None:
    prompts = [one_step_prompt(seed) for seed in SEEDS]
    shared = {
        item.question
        for prompt in prompts
        for item in teacher.plan_one_step(prompt)
        if item.kind == "shared"
    }
    assert len({normalize_question(q) for q in shared}) == 1
    good = teacher.unique_good_questions(prompts)
    assert len(good) == len(SEEDS) * (teacher.GOOD_PER_REPLY - 1) + 1
    # No question repeats across seeds except the shared one.
    everything = [
        normalize_question(item.question)
        for prompt in prompts
        for item in teacher.plan_one_step(prompt)
        if item.kind != "shared"
    ]
    assert len(everything) == len(set(everything))


def test_fake_one_step_is_deterministic_and_varies_by_seed() -> None:
    first = [teacher.reply_for_prompt(one_step_prompt(seed)) for seed in SEEDS]
    again = [teacher.reply_for_prompt(one_step_prompt(seed)) for seed in SEEDS]
    assert first == again
    assert len(set(first)) == len(SEEDS)
    positions = {
        tuple(p.kind for p in teacher.plan_one_step(one_step_prompt(seed))) for seed in SEEDS
    }
    assert len(positions) > 1  # bad items sit at different places in different replies


@pytest.mark.parametrize("n", [1, 3, 7, 12])
def test_fake_one_step_other_sizes(n: int) -> None:
    prompt = one_step_prompt(SEEDS[2], n)
    result = parse_one_step(teacher.reply_for_prompt(prompt))
    assert len(result.items) == n and result.errors == []
    assert sum(p.good for p in teacher.plan_one_step(prompt)) == teacher.good_per_reply(n)


def test_fake_one_step_truncated() -> None:
    prompt = one_step_prompt(SEEDS[0])
    reply = teacher.tinygsm_reply(request(prompt), 0, truncated=True)
    plan = teacher.plan_one_step(prompt, truncated=True)
    result = parse_one_step(reply)
    assert len(result.items) == teacher.DEFAULT_N - 1
    assert result.errors == ["truncated"]
    assert [p.complete for p in plan] == [True] * (teacher.DEFAULT_N - 1) + [False]
    assert [q for q, _ in result.items] == [p.question for p in plan[:-1]]


def test_fake_truncate_fraction_is_by_prompt() -> None:
    reply = functools.partial(teacher.tinygsm_reply, truncate_fraction=0.5)
    prompts = [one_step_prompt(seed, n) for seed in SEEDS for n in (4, 5, 6, 8, 9)]
    cut = [teacher.is_truncated(p, truncate_fraction=0.5) for p in prompts]
    assert 0 < sum(cut) < len(prompts)
    for prompt, was_cut in zip(prompts, cut, strict=True):
        errors = parse_one_step(reply(request(prompt), 0)).errors
        assert errors == (["truncated"] if was_cut else [])


@pytest.mark.parametrize("template", ["two_step_questions", "two_step_gsm_ic"])
def test_fake_two_step_round_trip(template: str) -> None:
    for seed in SEEDS:
        prompt = render(template, seed=seed, n=teacher.DEFAULT_N)
        plan = teacher.plan_questions(prompt)
        result = parse_questions(teacher.tinygsm_reply(request(prompt), 0))
        assert result.errors == []
        assert result.items == [p.question for p in plan]
        assert sorted(p.kind for p in plan) == sorted(teacher.question_kinds(teacher.DEFAULT_N))
        for planned in plan:
            question = planned.question
            if template == "two_step_gsm_ic" and planned.kind == "good":
                assert teacher.IRRELEVANT_PATTERN.search(question)
            program_prompt = render("two_step_program", question=question)
            expected = teacher.plan_program(question)
            program = parse_program(teacher.tinygsm_reply(request(program_prompt), 0))
            assert program is not None
            status, value = outcome(question, program)
            assert expected.kind == teacher.program_kind_for(question)
            if expected.kind == "syntax_error":
                assert status == "syntax_error"
            elif expected.kind == "runtime_error":
                assert status == "runtime_error"
            elif expected.kind == "non_numeric":
                assert status == "ok" and isinstance(value, str)
            else:
                assert (status, value) == ("ok", expected.answer)


def test_fake_gsm_ic_answers_ignore_irrelevant_context() -> None:
    seed = SEEDS[2]
    plain = teacher.plan_questions(render("two_step_questions", seed=seed, n=10), gsm_ic=False)
    noisy = teacher.plan_questions(render("two_step_questions", seed=seed, n=10), gsm_ic=True)
    for a, b in zip(plain, noisy, strict=True):
        if a.kind == "good":
            assert a.question != b.question
            assert teacher.solve(a.question).answer == teacher.solve(b.question).answer


def test_fake_program_kinds_cover_all_bad_kinds() -> None:
    kinds = set()
    for seed in SEEDS:
        prompt = render("two_step_questions", seed=seed, n=12)
        kinds.update(teacher.program_kind_for(p.question) for p in teacher.plan_questions(prompt))
    assert kinds == {"good", *teacher.PROGRAM_BAD_KINDS}


def test_fake_truncated_two_step_replies() -> None:
    prompt = render("two_step_questions", seed=SEEDS[0], n=5)
    result = parse_questions(teacher.reply_for_prompt(prompt, truncated=True))
    assert len(result.items) == 4 and result.errors == ["truncated"]
    question = teacher.plan_questions(prompt)[0].question
    program_prompt = render("two_step_program", question=question)
    assert parse_program(teacher.reply_for_prompt(program_prompt, truncated=True)) is None


def test_fake_teacher_rejects_unknown_prompts() -> None:
    with pytest.raises(ValueError):
        teacher.tinygsm_reply(request("Write me a poem about 3 cats."), 0)
    with pytest.raises(ValueError):
        teacher.tinygsm_reply({"messages": [{"role": "system", "content": "x"}]}, 0)
