"""thinkbudget.traces: arithmetic lines re-evaluated and the trace's result (literal tables + fuzzing)."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from thinkbudget.tasks import chain_lines, load_problems
from thinkbudget.traces import answer_follows, check_lines, corrupt_trace, evaluate, is_number, same_number


@pytest.mark.parametrize(
    "expr, value",
    [
        ("47 + 8", 55),
        ("55 - 6", 49),
        ("(2 - 10) * 3", -24),
        ("48/2", 24),
        ("7 / 2", Fraction(7, 2)),
        ("3 × 4", 12),
        ("-5 + 2", -3),
        ("1.5 * 2", 3),
        ("42", 42),
        ("", None),
        ("2 ** 10", None),  # powers are not steps of these tasks
        ("1 / 0", None),
        ("abs(3)", None),
        ("x + 1", None),
        ("4 +", None),
        ("9" * 30 + " * " + "9" * 30, None),  # past MAX_DIGITS
    ],
)
def test_evaluate(expr, value):
    assert evaluate(expr) == (None if value is None else Fraction(value))


@pytest.mark.parametrize(
    "trace, lines, correct, result",
    [
        ("47 + 8 = 55\n- 6 = 49\n+ 3 = 52", 3, 3, "52"),
        ("47 + 8 = 55\n- 6 = 48\n+ 3 = 51", 3, 2, "51"),  # the wrong line alone is wrong
        ("47 + 8 - 6 = 49\n+ 3 + 1 = 53", 2, 2, "53"),
        ("= 52", 0, 0, "52"),  # the result alone: nothing derived, nothing to check
        ("= 7 * (5 - 2)\n= 7 * 3\n= 21", 2, 2, "21"),  # nested: '=' continues the previous line
        ("= 7 * (5 - 2)\n= 7 * 4\n= 28", 2, 1, "28"),
        ("732 * 6 = 4200 + 120 + 6 = 4366", 1, 0, "4366"),  # every side must agree
        ("347 * 6 = 1800 + 240 + 42 = 2082", 1, 1, "2082"),
        ("Natalia sold 48/2 = 24 clips in May.\n48+24 = 72", 1, 1, "72"),  # prose is not a step
        ("She has $1,200 left.\n1,200 - 200 = 1,000", 1, 1, "1000"),
        ("no numbers at all", 0, 0, None),
        ("", 0, 0, None),
        ("50 + 7 = 67\n+ 2 = 73", 2, 0, "73"),  # the example: both wrong (57, then 69)
    ],
)
def test_check_lines(trace, lines, correct, result):
    check = check_lines(trace)
    assert (check.lines, check.correct, check.result) == (lines, correct, result)
    assert check.all_correct == (lines == correct)


@pytest.mark.parametrize(
    "a, b, same",
    [
        ("52", "52", True),
        ("52", "52.0", True),
        ("1,200", "1200", True),
        ("-3", "-3", True),
        ("52", "53", False),
    ]
    + [(None, "1", False), ("1", None, False), ("abc", "abc", False), ("", "", False)],
)
def test_same_number(a, b, same):
    assert same_number(a, b) is same


@pytest.mark.parametrize("text, number", [("52", True), ("-3", True), ("2.5", True), ("1,200", True)])
def test_is_number(text, number):
    assert is_number(text) is number


@pytest.mark.parametrize("text", ["", "abc", "3 apples", "1/2", None])
def test_is_not_number(text):
    assert not is_number(text)


def test_answer_follows():
    assert answer_follows("47 + 8 = 55\n- 6 = 49", "49")
    assert not answer_follows("47 + 8 = 55\n- 6 = 49", "55")  # a partial result is not the conclusion
    assert not answer_follows("", "49")
    assert not answer_follows("47 + 8 = 55", None)


def test_fuzz_chain_lines_with_one_error():
    """Random chains at every grouping: all lines right; change one result and exactly the lines that
    use it as written are wrong (its own line, and the next, which continues from the wrong value)."""
    rng = random.Random(0)
    for _ in range(300):
        start = rng.randint(0, 99)
        ops = [(rng.choice("+-"), rng.randint(1, 9)) for _ in range(rng.randint(1, 15))]
        group = rng.choice([1, 2, 3, 4, 6])
        lines = chain_lines(start, ops, group)
        acc = start
        for s, x in ops:
            acc = acc + x if s == "+" else acc - x
        check = check_lines("\n".join(lines))
        assert check == check_lines("\n".join(lines)) and check.all_correct
        assert check.lines == len(lines) and check.result == str(acc)
        k = rng.randrange(len(lines))
        head, _, value = lines[k].rpartition(" = ")
        broken = lines[:k] + [f"{head} = {int(value) + rng.choice([-2, -1, 1, 2])}"] + lines[k + 1 :]
        bad = check_lines("\n".join(broken))
        assert bad.lines == len(lines)
        assert bad.correct == len(lines) - (2 if k + 1 < len(lines) else 1)


def test_fuzz_never_raises():
    rng = random.Random(1)
    alphabet = "0123456789 +-*/()=.×,$\nabc"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        check = check_lines(text)
        assert 0 <= check.correct <= check.lines


@pytest.mark.parametrize("task", ["chain", "multiply", "nested"])
def test_every_synthetic_trace_checks_out(task):
    for p in load_problems(task, "train", n=200) + load_problems(task, "test", n=50):
        for gran, trace in p.traces.items():
            check = check_lines(trace)
            assert check.lines > 0 and check.all_correct, (p.question, gran, trace)
            assert check.result == p.answer, (p.question, gran, trace)


# ------------------------------------------------------------------------------------------------
# corrupt_trace: one slip, carried to the end (the scorer's made-up wrong answers)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "trace",
    [
        "",  # no trace
        "= 52",  # the result alone: nothing to check
        "57+8=66\n-9=57",  # already wrong
        "5 * 3 = 15\n+ 2 = 17\nSo 17 apples.",  # prose after the last line: the slip would not be the result
        "He sold 48 clips.",  # prose only
        "48/2 = 24.5",  # not an integer result
        "5 * 3 = 15.",  # a result the cleaning changes ("15." or "1,200") is not written back: refused
        "2 * 600 = 1,200",
        "3 + 4 = 7\n+ 5 = 12.",  # and the line before it cannot carry a slip through it
    ],
)
def test_corrupt_trace_refuses(trace):
    assert corrupt_trace(trace, random.Random(0)) is None


def test_corrupt_trace_literal():
    # Seeded draws: line 0's 65 -> 74, then -9 carried from 74 (= 65) and the result 65.
    assert corrupt_trace("\n57+8=65\n-9=56\n", random.Random(3)) == ("\n57+8=74\n-9=65\n", "56", "65")
    # A restated result ("= 56") follows the slip; spaces and the line ends are kept.
    new, old, value = corrupt_trace("60 + 5 = 65\n+ 1 = 66\n= 66  \n", random.Random(0))
    assert old == "66" and new.endswith(f"= {value}  \n") and check_lines(new).correct == 3 - 1
    # A line that restarts from its own numbers cannot carry a slip from above: only it can slip.
    new, old, value = corrupt_trace("5 * 3 = 15\n15 + 2 = 17", random.Random(1))
    assert new.startswith("5 * 3 = 15\n15 + 2 = ") and old == "17" and value != "17"


def test_fuzz_corrupt_trace_makes_one_wrong_line():
    """Random chains at every grouping: a slip leaves exactly one wrong line, the trace's result is the
    new value (different from the old), every number before the slipped line is unchanged, and the same
    seed gives the same slip."""
    rng = random.Random(7)
    for _ in range(300):
        start = rng.randint(0, 99)
        ops = [(rng.choice("+-"), rng.randint(1, 9)) for _ in range(rng.randint(1, 15))]
        trace = "\n".join(chain_lines(start, ops, rng.choice([1, 2, 3, 4, 6])))
        seed = rng.random()
        slip = corrupt_trace(trace, random.Random(seed))
        assert slip is not None and slip == corrupt_trace(trace, random.Random(seed))
        new, old, value = slip
        check = check_lines(new)
        assert check.lines == check_lines(trace).lines and check.correct == check.lines - 1
        assert old == check_lines(trace).result and value == check.result and value != old
        first_changed = next(i for i, (a, b) in enumerate(zip(trace.split("\n"), new.split("\n"))) if a != b)
        assert trace.split("\n")[:first_changed] == new.split("\n")[:first_changed]
