"""The one grader (thinkbudget/grading.py): a table of literal answers, reasoning-gym scoring, and fuzzing."""

from __future__ import annotations

import random

import pytest

from thinkbudget.grading import extract_boxed, extract_final_answer, is_correct

BOXED = [
    ("\\boxed{5}", "5"),
    ("a \\boxed{1} then \\boxed{2}", "2"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("\\boxed{unclosed", None),
    ("no box", None),
    ("\\fbox{7}", "7"),
    ("\\boxed{ 42 }", "42"),
    ("", None),
]


@pytest.mark.parametrize("text,expected", BOXED)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


SCORES = [
    ("The answer is \\boxed{42}.", "42", True),
    ("\\boxed{42.0}", "42", True),
    ("\\boxed{41}", "42", False),
    ("\\boxed{-4}", "-4", True),
    ("\\boxed{1,234}", "1234", True),
    ("\\boxed{\\frac{1}{2}}", "0.5", True),
    ("\\boxed{18} dollars", "18", True),
    # Without a box, math-verify's extraction on the answer section decides.
    ("So she pays 18 dollars.", "18", True),
    ("", "18", False),
    ("\\boxed{}", "18", False),
    ("I don't know", "18", False),
    # The last box counts, not the first.
    ("\\boxed{18} no wait \\boxed{19}", "18", False),
]


@pytest.mark.parametrize("answer,gold,expected", SCORES)
def test_math_scoring_table(answer, gold, expected):
    assert is_correct(answer, gold) is expected


def test_reasoning_gym_scoring_counts_only_exact():
    import reasoning_gym

    ds = reasoning_gym.create_dataset("basic_arithmetic", size=3, seed=7)
    for entry in ds:
        gold, meta = entry["answer"], entry["metadata"]
        assert is_correct(f"\\boxed{{{gold}}}", gold, task="rg/basic_arithmetic", meta=meta)
        assert not is_correct("\\boxed{999999}", gold, task="rg/basic_arithmetic", meta=meta)
        assert not is_correct("", gold, task="rg/basic_arithmetic", meta=meta)


def test_fuzz_never_raises():
    rng = random.Random(7)
    alphabet = ["\\boxed{", "}", "{", "1", "2", "/", "\\frac", "x", "=", " ", "$", "^", "\\", ".", ","]
    for _ in range(300):
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 30)))
        assert is_correct(text, "12") in (True, False)
        extract_final_answer(text)
