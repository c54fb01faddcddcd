"""Backward questions built by program: which number is masked, the FOBAR and SV forms."""

from __future__ import annotations

import random
import re

import pytest

from orchestrator.methods.skywork.backward import (
    fobar_question,
    mask_number,
    maskable_numbers,
    self_verification_question,
    split_last_question,
    unknown_name,
)

GSM = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May?"
)


def test_fobar_masks_one_number_and_its_value_is_the_new_answer() -> None:
    masked = mask_number(GSM, random.Random(0))
    assert masked is not None and masked.value == "48" and masked.name == "X"
    assert masked.question == GSM.replace("48", "X")
    question = fobar_question(masked, "72")
    assert question == (
        GSM.replace("48", "X") + "\nIf we know the answer to the above question is 72, "
        "what is the value of unknown variable X?"
    )
    # putting the masked value back gives the original question
    body = question.split("\nIf we know")[0]
    assert body.replace("X", masked.value) == GSM


def test_only_numbers_that_occur_once_outside_latex_groups_are_masked() -> None:
    q = r"What is $101^{3} - 3 \cdot 101^{2} + 3 \cdot 101 -1$ when 7 is added? \frac{1}{2}"
    values = [m.group(1) for m in maskable_numbers(q)]
    assert values == ["1", "7"]  # 101 and 3 repeat; 3, 2 and 1/2 sit inside braces
    q2 = "A box holds 2.5 kg, 1,000 grams and 12 marbles. What is x_2 + 3?"
    assert [m.group(1) for m in maskable_numbers(q2)] == ["2.5", "12", "3"]


def test_asy_drawings_are_never_masked() -> None:
    q = "The square has side 5. [asy]\ndraw((0,0)--(9,0));\n[/asy] What is its area?"
    assert [m.group(1) for m in maskable_numbers(q)] == ["5"]


def test_unknown_name_avoids_letters_already_used() -> None:
    assert unknown_name("Find x if 2x + 3 = 9.") == "Y"  # "2x" is not a standalone x
    assert unknown_name("Find $x$ such that x + 3 = 9.") == "Y"
    assert unknown_name("Let x, y and z be reals with x + y + z = 6.") == "N"
    assert unknown_name("Tom has 3 apples.") == "X"
    assert mask_number("Let x, y, z and n be 4 reals.", random.Random(0)) is None
    assert mask_number("What is pi?", random.Random(0)) is None


def test_mask_choice_is_reproducible_and_covers_candidates() -> None:
    q = "Ann has 3 cats, 5 dogs and 11 fish. How many pets does she have?"
    picks = {mask_number(q, random.Random(s)).value for s in range(40)}  # type: ignore[union-attr]
    assert picks == {"3", "5", "11"}
    assert mask_number(q, random.Random(7)) == mask_number(q, random.Random(7))


def test_self_verification_states_the_question_as_a_fact() -> None:
    masked = mask_number(GSM, random.Random(0))
    assert masked is not None
    sv = self_verification_question(masked, "72")
    assert sv == (
        "Natalia sold clips to X of her friends in April, and then she sold half as many clips "
        'in May. We know that the answer to the question "How many clips did Natalia sell '
        'altogether in April and May?" is 72. What is the value of unknown variable X?'
    )


def test_self_verification_drops_trailing_instructions_and_needs_two_sentences() -> None:
    q = "A bag has 4 red and 6 blue balls. What is the chance of red? Express it as a fraction."
    assert split_last_question(q) == (
        "A bag has 4 red and 6 blue balls.",
        "What is the chance of red?",
    )
    assert split_last_question("What is 2 + 3?") is None
    masked = mask_number("What is 2 + 3?", random.Random(0))
    assert masked is not None and self_verification_question(masked, "5") is None


@pytest.mark.parametrize("seed", range(5))
def test_masked_question_has_exactly_one_unknown(seed: int) -> None:
    q = "In 3 years Tom will be 17 and Ann will be 21. How old is Ann now?"
    masked = mask_number(q, random.Random(seed))
    assert masked is not None
    assert len(re.findall(r"\bX\b", masked.question)) == 1
    assert masked.question.replace("X", masked.value, 1) == q
