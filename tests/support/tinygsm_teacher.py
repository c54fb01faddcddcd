"""A deterministic fake TinyGSM teacher for tests: ``tinygsm_reply(request_json, index)``.

A scripted OpenAI-compatible test server calls ``tinygsm_reply`` with a chat-completion request
body; the last user message is a prompt rendered from one of ``prompts/tinygsm/*.j2``. The
template is recognised by its fixed ``Task: ...`` line (``TASK_MARKERS``) and the reply is
written in that template's format, derived from the seed (or question) inside the prompt.

Replies depend only on the prompt text (``index`` is ignored), so retries and resumed runs get
the same reply. They look like a real model's: a preamble or closing sentence on some replies,
mixed numbering styles ("Problem 3:", "3.", "Question:", "**Problem 3:**"), programs sometimes
fenced, sometimes already wrapped in ``def simple_math_problem()``.

Bad items, so every filter has something to do (the ``plan_*`` helpers report them; the
engine's filters decide, tests compare):

- one-step reply of ``n`` items: kinds ``ONE_STEP_KIND_ORDER[:n]`` (then "good" for n > 7),
  shuffled by a hash of the prompt. With the default n=10: 4 "good", 1 "shared", and one each
  of "syntax_error" (program does not parse), "runtime_error" (ZeroDivisionError),
  "non_numeric" (result is a str), "no_numbers" (question has no digits), "too_short"
  (question under 20 characters and 2 words). Each bad item has exactly one defect.
- "shared" is ``SHARED_QUESTION`` in a per-seed mix of letter case: the same question modulo
  case/whitespace in every reply, so cross-seed exact dedup keeps one of them.
- every other question names a town derived from a hash of the seed, so different seeds do not
  produce the same question by accident (``plan_*`` helpers give the exact texts to check).
- two-step question lists: kinds ``QUESTION_KIND_ORDER[:n]`` (then "good"), shuffled; with
  n=10: 7 "good", 1 "shared", 1 "no_numbers", 1 "too_short". The GSM-IC variant adds one
  irrelevant sentence with a number (``IRRELEVANT_PATTERN``) to every "good" question.
- two-step program replies: the program's kind comes from ``program_kind_for(question)``, a
  hash of the normalised question ("shared" and the bad-question kinds always get good ones).
- ``truncated=True`` (or ``truncate_fraction`` picking replies by prompt hash) cuts the last
  item in half and drops its end marker.

This module does not serve HTTP, count requests or check what the engine did.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.core.records import normalize_question

END_OF_QUESTION = "<|endofquestion|>"
END_OF_PROGRAM = "<|endofprogram|>"

TASK_MARKERS: dict[str, str] = {
    "one_step": "Task: one-step problem and program generation",
    "two_step_questions": "Task: two-step question variants",
    "two_step_gsm_ic": "Task: two-step irrelevant-context variants",
    "two_step_program": "Task: two-step solution program",
}

SHARED_QUESTION = (
    "A library has 120 books on each of 7 shelves. How many books are on the shelves in total?"
)
SHARED_ANSWER = 840

GOOD_KINDS = ("good", "shared")
PROGRAM_BAD_KINDS = ("syntax_error", "runtime_error", "non_numeric")
QUESTION_BAD_KINDS = ("no_numbers", "too_short")
BAD_KINDS = PROGRAM_BAD_KINDS + QUESTION_BAD_KINDS
ONE_STEP_KIND_ORDER = ("good", "shared", *BAD_KINDS)
QUESTION_KIND_ORDER = ("good", "shared", *QUESTION_BAD_KINDS)
DEFAULT_N = 10
TOO_SHORT_MAX_CHARS = 19


def one_step_kinds(n: int) -> list[str]:
    """The multiset of item kinds in a one-step reply of ``n`` items (before shuffling)."""
    return list(ONE_STEP_KIND_ORDER[:n]) + ["good"] * max(0, n - len(ONE_STEP_KIND_ORDER))


def question_kinds(n: int) -> list[str]:
    """The multiset of question kinds in a two-step question-list reply of ``n`` items."""
    return list(QUESTION_KIND_ORDER[:n]) + ["good"] * max(0, n - len(QUESTION_KIND_ORDER))


def good_per_reply(n: int = DEFAULT_N) -> int:
    """Items of a complete one-step reply that pass every filter ("good" + "shared")."""
    return sum(kind in GOOD_KINDS for kind in one_step_kinds(n))


GOOD_PER_REPLY = good_per_reply(DEFAULT_N)  # 5 = 4 unique + 1 shared


# --- prompt reading -----------------------------------------------------------------------


def last_user_message(request_json: Mapping[str, Any]) -> str:
    """The content of the last user message of a chat-completion request body."""
    for message in reversed(request_json.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content", "")
            if isinstance(content, list):  # content parts
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    raise ValueError("request has no user message")


def detect_task(prompt: str) -> str | None:
    """Which TinyGSM template rendered ``prompt`` (a ``TASK_MARKERS`` key), or None."""
    found = [task for task, marker in TASK_MARKERS.items() if marker in prompt]
    return found[0] if len(found) == 1 else None


_SEED = re.compile(
    r"^Seed problem:\n(?P<seed>.*?)\n(?:\(The seed's answer|\nWrite exactly)", re.M | re.S
)
_N = re.compile(r"^Write exactly (\d+) new problems", re.M)
_QUESTION = re.compile(r"^Problem:\n(?P<question>.*?)\n\nWrite the function", re.M | re.S)


def extract_seed(prompt: str) -> str:
    matches = list(_SEED.finditer(prompt))
    if not matches:
        raise ValueError("no 'Seed problem:' section in prompt")
    return matches[-1].group("seed").strip()


def extract_n(prompt: str) -> int:
    matches = _N.findall(prompt)
    if not matches:
        raise ValueError("no 'Write exactly N new problems' line in prompt")
    return int(matches[-1])


def extract_question(prompt: str) -> str:
    matches = list(_QUESTION.finditer(prompt))
    if not matches:
        raise ValueError("no 'Problem:' section in prompt")
    return matches[-1].group("question").strip()


# --- deterministic material ---------------------------------------------------------------


def _hash(*parts: object) -> int:
    blob = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int(hashlib.sha256(blob).hexdigest()[:16], 16)


_SYLLABLES = tuple(c + v for c in "bdfgklmnprstvz" for v in "aeiou")
_NAME_LIST = "Tom Mia Ravi Lena Omar Grace Yuki Sofia Ben Amara Leo Nadia Pablo Ines Kofi Hana"
_NAMES = _NAME_LIST.split()
_FEMALE = frozenset(["Mia", "Lena", "Grace", "Yuki", "Sofia", "Amara", "Nadia", "Ines", "Hana"])
_OBJECTS = ["apples", "pencils", "marbles", "stickers", "oranges", "cards", "shells", "stamps"]
_FOODS = ["muffins", "cookies", "rolls", "pies"]
_THINGS = ("bicycle", "jacket", "board game", "lamp")


def _town(seed: str) -> str:
    h = _hash("town", seed)
    parts = [_SYLLABLES[(h >> (7 * k)) % len(_SYLLABLES)] for k in range(4)]
    return "".join(parts).capitalize()


def _seed_numbers(seed: str) -> list[int]:
    numbers = [int(x) for x in re.findall(r"\d+", seed.replace(",", ""))]
    return [x for x in numbers if x > 0] or [4, 6, 9]


@dataclass(frozen=True)
class Problem:
    """A generated question with its parameters and correct answer."""

    template: int
    question: str
    answer: int
    lines: tuple[str, ...]  # program body lines; the last is "result = <expr>"
    obj: str


def _make_problem(seed: str, i: int) -> Problem:
    """Good problem number ``i`` for ``seed``: numbers from the seed, story from templates."""
    nums = _seed_numbers(seed)
    h = _hash("item", seed, i)
    town = _town(seed)
    name = _NAMES[(h >> 3) % len(_NAMES)]
    pron = "She" if name in _FEMALE else "He"
    template = i % 4
    first = nums[i % len(nums)]
    second = nums[(i + 1) % len(nums)]
    if template == 0:
        obj = _OBJECTS[(h >> 9) % len(_OBJECTS)]
        a = first % 50 + 5 + i
        b = second % 20 + 3 + (h % 5)
        c = (a + b) // 3 + 1
        question = (
            f"{name} from {town} has {a} {obj}. {pron} buys {b} more {obj} at the market and "
            f"then gives {c} {obj} to a friend. How many {obj} does {name} have now?"
        )
        lines = (
            f"# {obj.capitalize()} {name} starts with",
            f"{obj}_at_start = {a}",
            f"# {obj.capitalize()} bought at the market",
            f"{obj}_bought = {b}",
            f"# {obj.capitalize()} given to a friend",
            f"{obj}_given = {c}",
            "# What is left after buying and giving away",
            f"result = {obj}_at_start + {obj}_bought - {obj}_given",
        )
        return Problem(template, question, a + b - c, lines, obj)
    if template == 1:
        obj = _FOODS[(h >> 9) % len(_FOODS)]
        a = first % 9 + 2 + i
        b = second % 10 + 6
        c = (a * b) // 3 + (h % 4)
        question = (
            f"A bakery in {town} bakes {a} trays of {obj} every day, and each tray holds {b} "
            f"{obj}. If the bakery sells {c} {obj} in a day, how many {obj} are left at the end "
            f"of the day?"
        )
        lines = (
            "# Trays baked and how many each tray holds",
            f"trays_baked = {a}",
            f"{obj}_per_tray = {b}",
            f"total_{obj} = trays_baked * {obj}_per_tray",
            f"# {obj.capitalize()} sold during the day",
            f"{obj}_sold = {c}",
            "result = total_" + obj + f" - {obj}_sold",
        )
        return Problem(template, question, a * b - c, lines, obj)
    if template == 2:
        thing = _THINGS[(h >> 9) % len(_THINGS)]
        a = first % 30 + 5 + i
        b = second % 8 + 3
        c = (a * b) // 4 + 1 + (h % 7)
        question = (
            f"{name} from {town} saves ${a} every week for {b} weeks and then spends ${c} on a "
            f"{thing}. How much money does {name} have left?"
        )
        lines = (
            "# Money saved each week and number of weeks",
            f"weekly_savings = {a}",
            f"number_of_weeks = {b}",
            "total_saved = weekly_savings * number_of_weeks",
            f"# Money spent on the {thing}",
            f"price_of_{thing.replace(' ', '_')} = {c}",
            f"result = total_saved - price_of_{thing.replace(' ', '_')}",
        )
        return Problem(template, question, a * b - c, lines, "dollars")
    a = first % 12 + 2 + i
    c = 2 + (i + h) % 4
    k = second % 6 + 3
    b = c * k
    question = (
        f"A school in {town} has {a} classrooms with {b} students in each classroom. The "
        f"students are split into teams of {c}. How many teams are there?"
    )
    lines = (
        "# Classrooms and students in each classroom",
        f"classrooms = {a}",
        f"students_per_classroom = {b}",
        "total_students = classrooms * students_per_classroom",
        "# Each team has the same number of students",
        f"team_size = {c}",
        "result = total_students // team_size",
    )
    return Problem(template, question, a * k, lines, "teams")


_QUESTION_PATTERNS: tuple[tuple[int, re.Pattern[str]], ...] = (
    (
        0,
        re.compile(
            r"has (?P<a>\d+) \w+\. \w+ buys (?P<b>\d+) more \w+ at the market and then gives "
            r"(?P<c>\d+) \w+ to a friend"
        ),
    ),
    (
        1,
        re.compile(
            r"bakes (?P<a>\d+) trays of \w+ every day, and each tray holds (?P<b>\d+) \w+\. "
            r"If the bakery sells (?P<c>\d+)"
        ),
    ),
    (
        2,
        re.compile(
            r"saves \$(?P<a>\d+) every week for (?P<b>\d+) weeks and then spends "
            r"\$(?P<c>\d+)"
        ),
    ),
    (
        3,
        re.compile(
            r"has (?P<a>\d+) classrooms with (?P<b>\d+) students in each classroom\. The "
            r"students are split into teams of (?P<c>\d+)\."
        ),
    ),
)
_IRRELEVANT = (
    "{town} was founded {d} years ago.",
    "{other}'s dog is {d} years old.",
    "The shop next door has {d} windows.",
)
IRRELEVANT_PATTERN = re.compile(
    r"\s*(?:[A-Z][a-z]+ was founded \d+ years ago\.|[A-Z][a-z]+'s dog is \d+ years old\."
    r"|The shop next door has \d+ windows\.)",
)


def _shared_variant(seed: str) -> str:
    """``SHARED_QUESTION`` in a per-seed letter case (identical after normalisation)."""
    variant = _hash("shared", seed) % 4
    if variant == 1:
        return SHARED_QUESTION.lower()
    if variant == 2:
        return SHARED_QUESTION.upper()
    if variant == 3:
        return SHARED_QUESTION.replace("library", "LIBRARY").replace("books", "Books")
    return SHARED_QUESTION


_SHARED_LINES = (
    "# Books on each shelf and number of shelves",
    "books_per_shelf = 120",
    "number_of_shelves = 7",
    "result = books_per_shelf * number_of_shelves",
)


def _no_numbers(seed: str, i: int) -> Problem:
    h = _hash("item", seed, i)
    name = _NAMES[(h >> 3) % len(_NAMES)]
    obj = _OBJECTS[(h >> 9) % len(_OBJECTS)]
    question = (
        f"{name} from {_town(seed)} has some {obj} and buys a few more {obj} at the market. "
        f"How many {obj} does {name} have now?"
    )
    lines = (f"{obj}_at_start = 12", f"{obj}_bought = 5", f"result = {obj}_at_start + {obj}_bought")
    return Problem(-1, question, 17, lines, obj)


def _too_short(seed: str, i: int) -> Problem:
    a, b = 2 + i, 3 + _hash("short", seed) % 7
    question = f"{_town(seed)}: {a}+{b}?"
    assert len(question) <= TOO_SHORT_MAX_CHARS, question
    return Problem(-2, question, a + b, (f"result = {a} + {b}",), "")


def _break(lines: tuple[str, ...], kind: str, obj: str) -> tuple[str, ...]:
    """The program ``lines`` with one defect of ``kind`` (or unchanged for good kinds)."""
    *head, last = lines
    expr = last.split("=", 1)[1].strip()
    if kind == "syntax_error":
        return (*head, f"result = ({expr}")
    if kind == "runtime_error":
        return (*head, "# Share the total out evenly", "shares = 1 // (1 - 1)", last)
    if kind == "non_numeric":
        return (*head, f'result = f"{{{expr}}} {obj or "units"}"')
    return lines


# --- one-step -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedItem:
    """One item of a planned reply: its kind, the question and program as written, the answer
    a correct run gets (None for bad programs), and whether the reply cut it off."""

    kind: str
    question: str
    program: str
    answer: int | None
    complete: bool = True

    @property
    def good(self) -> bool:
        """Whether the engine should keep it (before cross-seed dedup of "shared")."""
        return self.complete and self.kind in GOOD_KINDS


def _item_for(seed: str, i: int, kind: str) -> tuple[Problem, str]:
    if kind == "shared":
        problem = Problem(-3, _shared_variant(seed), SHARED_ANSWER, _SHARED_LINES, "books")
    elif kind == "no_numbers":
        problem = _no_numbers(seed, i)
    elif kind == "too_short":
        problem = _too_short(seed, i)
    else:
        problem = _make_problem(seed, i)
    return problem, "\n".join(_break(problem.lines, kind, problem.obj))


def is_truncated(prompt: str, truncated: bool = False, truncate_fraction: float = 0.0) -> bool:
    """Whether the reply to ``prompt`` is cut off: always when ``truncated``, else for a
    deterministic ``truncate_fraction`` of prompts (by hash)."""
    if truncated:
        return True
    return truncate_fraction > 0 and (_hash("truncate", prompt) % 10_000) < truncate_fraction * 1e4


def plan_one_step(
    prompt: str, *, truncated: bool = False, truncate_fraction: float = 0.0
) -> list[PlannedItem]:
    """The items ``tinygsm_reply`` writes for a one-step prompt, in reply order."""
    seed, n = extract_seed(prompt), extract_n(prompt)
    kinds = one_step_kinds(n)
    random.Random(_hash("shuffle", prompt)).shuffle(kinds)
    cut = is_truncated(prompt, truncated, truncate_fraction)
    items = []
    for i, kind in enumerate(kinds):
        problem, program = _item_for(seed, i, kind)
        answer = None if kind in PROGRAM_BAD_KINDS else problem.answer
        complete = not (cut and i == len(kinds) - 1)
        items.append(PlannedItem(kind, problem.question, program, answer, complete))
    return items


def _label(style: int, number: int) -> str:
    return (f"Problem {number}: ", f"{number}. ", "Question: ", f"**Problem {number}:** ")[style]


def _as_function(question: str, program: str) -> str:
    body = "\n".join("    " + line for line in program.split("\n"))
    return (
        f'def simple_math_problem() -> int:\n    """\n    {question}\n    """\n{body}\n'
        "    return result"
    )


def _program_block(question: str, program: str, style: int) -> str:
    """The program as a reply shows it: plain, fenced, as a function, or a fenced function."""
    if style in (2, 3):
        program = _as_function(question, program)
    if style in (1, 3):
        return f"```python\n{program}\n```"
    return program


def render_one_step(prompt: str, items: list[PlannedItem]) -> str:
    """The one-step reply text for planned ``items`` (styles chosen by a hash of the prompt)."""
    h = _hash("style", prompt)
    out: list[str] = []
    if h % 2 == 0:
        out.append(f"Sure! Here are {len(items)} new problems, each with a Python program.\n\n")
    for i, item in enumerate(items):
        label = _label(((h >> 4) ^ i) % 4, i + 1)
        block = _program_block(item.question, item.program, ((h >> 8) ^ i) % 4)
        if not item.complete:
            out.append(f"{label}{item.question}\n{END_OF_QUESTION}\n{block[: len(block) // 2]}")
            return "".join(out)
        out.append(f"{label}{item.question}\n{END_OF_QUESTION}\n{block}\n{END_OF_PROGRAM}\n")
        if ((h >> 12) ^ i) % 3 == 0:
            out.append("\n")
    if h % 3 == 0:
        out.append("\nLet me know if you would like more problems!")
    return "".join(out)


# --- two-step -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedQuestion:
    """One question of a planned question-list reply (``complete`` False: cut off)."""

    kind: str
    question: str
    complete: bool = True


def plan_questions(
    prompt: str,
    *,
    gsm_ic: bool | None = None,
    truncated: bool = False,
    truncate_fraction: float = 0.0,
) -> list[PlannedQuestion]:
    """The questions ``tinygsm_reply`` writes for a two-step question (or GSM-IC) prompt."""
    if gsm_ic is None:
        gsm_ic = detect_task(prompt) == "two_step_gsm_ic"
    seed, n = extract_seed(prompt), extract_n(prompt)
    kinds = question_kinds(n)
    random.Random(_hash("shuffle", prompt)).shuffle(kinds)
    cut = is_truncated(prompt, truncated, truncate_fraction)
    planned = []
    for i, kind in enumerate(kinds):
        question = _item_for(seed, i, kind)[0].question
        if gsm_ic and kind == "good":
            question = _add_irrelevant(question, seed, i)
        planned.append(PlannedQuestion(kind, question, not (cut and i == len(kinds) - 1)))
    return planned


def _add_irrelevant(question: str, seed: str, i: int) -> str:
    """Insert one irrelevant sentence (with a number) before the final question sentence."""
    h = _hash("irrelevant", seed, i)
    sentence = _IRRELEVANT[h % len(_IRRELEVANT)].format(
        town=_town(seed), other=_NAMES[(h >> 4) % len(_NAMES)], d=3 + (h >> 8) % 60
    )
    cut = question.rfind(". ")
    if cut < 0:
        return f"{sentence} {question}"
    return f"{question[: cut + 1]} {sentence} {question[cut + 2 :]}"


def render_questions(prompt: str, planned: list[PlannedQuestion]) -> str:
    """The question-list reply text for ``planned`` questions."""
    h = _hash("style", prompt)
    out: list[str] = []
    if h % 2 == 0:
        out.append(f"Here are {len(planned)} new problems:\n\n")
    for i, item in enumerate(planned):
        label = _label(((h >> 4) ^ i) % 4, i + 1)
        if not item.complete:
            out.append(f"{label}{item.question[: len(item.question) // 2]}")
            return "".join(out)
        out.append(f"{label}{item.question}\n{END_OF_QUESTION}\n")
    return "".join(out)


def program_kind_for(question: str) -> str:
    """The kind of program a two-step program reply gives for ``question``: by a hash of the
    normalised question, 1 in 10 each "syntax_error", "runtime_error", "non_numeric", else
    "good"; always "good" for the shared question and for questions the fake teacher did not
    write with a known template (including its own no-number and too-short ones)."""
    if normalize_question(question) == normalize_question(SHARED_QUESTION):
        return "good"
    if solve(question) is None:
        return "good"
    bucket = _hash("program", normalize_question(question)) % 10
    return PROGRAM_BAD_KINDS[bucket] if bucket < len(PROGRAM_BAD_KINDS) else "good"


def solve(question: str) -> Problem | None:
    """Re-derive a templated problem (answer and program) from its text, or None."""
    text = IRRELEVANT_PATTERN.sub("", " ".join(question.split()))
    for template, pattern in _QUESTION_PATTERNS:
        match = pattern.search(text)
        if not match:
            continue
        a, b, c = (int(match.group(k)) for k in "abc")
        if template == 0:
            lines = (
                "# Items at the start, bought, and given away",
                f"items_at_start = {a}",
                f"items_bought = {b}",
                f"items_given = {c}",
                "result = items_at_start + items_bought - items_given",
            )
            return Problem(0, question, a + b - c, lines, "items")
        if template in (1, 2):
            lines = (
                "# Groups and how many in each group",
                f"groups = {a}",
                f"per_group = {b}",
                "total = groups * per_group",
                "# Amount taken away",
                f"taken_away = {c}",
                "result = total - taken_away",
            )
            return Problem(template, question, a * b - c, lines, "units")
        lines = (
            "# Classrooms and students in each classroom",
            f"classrooms = {a}",
            f"students_per_classroom = {b}",
            "total_students = classrooms * students_per_classroom",
            f"team_size = {c}",
            "result = total_students // team_size",
        )
        return Problem(3, question, a * b // c, lines, "teams")
    return None


@dataclass(frozen=True)
class PlannedProgram:
    """A planned program reply: its kind, program lines, expected answer (None when bad)."""

    kind: str
    program: str
    answer: int | None
    complete: bool = True


def plan_program(
    question: str, *, prompt: str = "", truncated: bool = False, truncate_fraction: float = 0.0
) -> PlannedProgram:
    """The program a two-step program reply gives for ``question`` and its expected answer
    (None for bad programs): templated questions are re-solved; the shared question gets its
    program; any other question gets ``result = <sum of its numbers>`` (0 without numbers).
    Pass the rendered ``prompt`` when using ``truncate_fraction`` (it hashes the prompt)."""
    kind = program_kind_for(question)
    problem = solve(question)
    if normalize_question(question) == normalize_question(SHARED_QUESTION):
        lines, answer, obj = _SHARED_LINES, SHARED_ANSWER, "books"
    elif problem is not None:
        lines, answer, obj = problem.lines, problem.answer, problem.obj
    else:
        numbers = [int(x) for x in re.findall(r"\d+", question.replace(",", ""))]
        lines = (
            "# Add up the numbers in the problem",
            f"numbers = {numbers!r}",
            "result = sum(numbers)",
        )
        answer, obj = sum(numbers), "units"
    program = "\n".join(_break(lines, kind, obj))
    cut = is_truncated(prompt or question, truncated, truncate_fraction)
    return PlannedProgram(kind, program, None if kind in PROGRAM_BAD_KINDS else answer, not cut)


def render_program(question: str, planned: PlannedProgram) -> str:
    """A program reply: a function (plain or fenced after a sentence) or plain top-level code,
    then the marker. A cut-off reply stops halfway with an unfinished line and no marker."""
    style = _hash("program-style", normalize_question(question)) % 3
    block = planned.program if style == 2 else _as_function(question, planned.program)
    prefix = "Here is the program:\n```python\n" if style == 1 else ""
    if not planned.complete:
        lines = block.split("\n")
        indent = "" if style == 2 else "    "
        return prefix + "\n".join(lines[: max(2, len(lines) // 2)]) + f"\n{indent}total = ("
    suffix = "\n```" if style == 1 else ""
    return f"{prefix}{block}{suffix}\n{END_OF_PROGRAM}\n"


# --- the reply function -------------------------------------------------------------------


def reply_for_prompt(
    prompt: str, *, truncated: bool = False, truncate_fraction: float = 0.0
) -> str:
    """The fake teacher's reply to a rendered TinyGSM prompt."""
    task = detect_task(prompt)
    cut, fraction = truncated, truncate_fraction
    if task == "one_step":
        plan = plan_one_step(prompt, truncated=cut, truncate_fraction=fraction)
        return render_one_step(prompt, plan)
    if task in ("two_step_questions", "two_step_gsm_ic"):
        planned = plan_questions(prompt, truncated=cut, truncate_fraction=fraction)
        return render_questions(prompt, planned)
    if task == "two_step_program":
        question = extract_question(prompt)
        program = plan_program(question, prompt=prompt, truncated=cut, truncate_fraction=fraction)
        return render_program(question, program)
    raise ValueError(f"not a TinyGSM prompt (no unique 'Task:' marker): {prompt[:120]!r}")


def tinygsm_reply(
    request_json: Mapping[str, Any],
    index: int = 0,
    *,
    truncated: bool = False,
    truncate_fraction: float = 0.0,
) -> str:
    """Reply text for a chat-completion request whose last user message is a TinyGSM prompt.

    ``index`` (the server's request or choice counter) is ignored: the reply depends only on
    the prompt. Wrap with ``functools.partial`` to set ``truncated``/``truncate_fraction``.
    Raises ValueError for a prompt no TinyGSM template produced."""
    del index
    return reply_for_prompt(
        last_user_message(request_json), truncated=truncated, truncate_fraction=truncate_fraction
    )


def unique_good_questions(prompts: Iterable[str], **options: Any) -> set[str]:
    """Normalised questions of the good one-step items over ``prompts``: its size is the number
    of items a run over these prompts should keep after cross-seed exact dedup."""
    return {
        normalize_question(item.question)
        for prompt in prompts
        for item in plan_one_step(prompt, **options)
        if item.good
    }
