"""Is a reasoning trace right? The arithmetic lines of a trace, re-evaluated, and its final result.

One set of rules for the data stage (every SFT target's lines are correct and its answer is the trace's
conclusion), for evaluation (``step_correctness`` and ``answer_follows_trace`` of every sample) and for
the tests:

- An **arithmetic line** consists of arithmetic only (numbers, ``+ - * / ×``, parentheses, ``=``) and
  has at least two sides: ``47 + 8 = 55``, ``48/2 = 24``, ``= 7 * (5 - 2)``. Prose lines (``Natalia sold
  48 clips``) are not arithmetic lines and are neither right nor wrong.
- A line that starts with an operator **continues** from the previous line's result: ``+ 8 = 55``
  after a line ending in ``47`` reads ``47 + 8 = 55``. A line that starts with ``=`` states the value of
  the previous line's result again (``= 7 * 3`` after ``= 7 * (5 - 2)``); with no previous line it only
  states a result (``= 52``, the coarsest trace) and is not counted.
- A line is **correct** when every side evaluates to the same number (exact rational arithmetic).
- The **result** of a trace is the last number written in it (for an arithmetic trace, the right-hand
  side of its last line), and an answer **follows the trace** when it equals that number.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

# Arithmetic only: digits, decimal points, operators, parentheses, '=' and spaces (commas in numbers
# such as 1,200 are removed first).
_ARITH_LINE = re.compile(r"^[\d\s.+\-*/×()=]+$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
MAX_DIGITS = 40  # larger numbers (or products) are not evaluated: a line that long is not a step


@dataclass(frozen=True)
class TraceCheck:
    """The arithmetic of one trace: ``lines`` arithmetic lines, ``correct`` of them right, and the
    trace's ``result`` (its last number, or None when it writes none)."""

    lines: int
    correct: int
    result: str | None

    @property
    def all_correct(self) -> bool:
        return self.correct == self.lines


def evaluate(expr: str) -> Fraction | None:
    """The exact value of an arithmetic expression (``+ - * /``, ``×`` as times, parentheses,
    unary minus), or None when it is not one (or divides by zero, or grows past :data:`MAX_DIGITS`)."""
    text = expr.replace("×", "*").strip()
    if not text or not _ARITH_LINE.match(text) or "=" in text:
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return Fraction(str(node.value))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                v = a + b
            elif isinstance(node.op, ast.Sub):
                v = a - b
            elif isinstance(node.op, ast.Mult):
                v = a * b
            else:
                v = a / b  # ZeroDivisionError is caught below
            if len(str(abs(v.numerator))) > MAX_DIGITS:
                raise OverflowError
            return v
        raise ValueError(type(node).__name__)

    try:
        return ev(tree)
    except (ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


def _clean(line: str) -> str:
    return _THOUSANDS.sub("", line.strip().rstrip(".").replace("$", ""))


def _arithmetic_sides(raw: str) -> list[str] | None:
    """The sides of an arithmetic line (cleaned, split at '='; one side when it has no '='), or None for
    any other line: the one reading of a line for :func:`check_lines` and :func:`corrupt_trace`."""
    line = _clean(raw)
    if not line or not _ARITH_LINE.match(line) or not any(c.isdigit() for c in line):
        return None
    return [s.strip() for s in line.split("=")]


def _continues(left: str) -> bool:
    """Whether a line whose left side is ``left`` continues from the previous line's result (``+ 8``, or
    nothing before its '=')."""
    return left == "" or left[0] in "+-*/×"


@dataclass(frozen=True)
class LineVerdict:
    """One arithmetic line of a trace: where it stands in the thinking (``start``/``end``, character
    offsets of the line without its line break) and whether it is right."""

    start: int
    end: int
    correct: bool


def line_verdicts(thinking: str) -> list[LineVerdict]:
    """Every arithmetic line of ``thinking`` that :func:`check_lines` counts, in order, re-evaluated (rules
    in the module docstring): the per-line labels of the process scorer and the counts of check_lines."""
    verdicts: list[LineVerdict] = []
    previous: Fraction | None = None  # the result of the previous arithmetic line
    offset = 0
    # splitlines with and without the breaks: the same lines, and the offsets of the original text
    for raw, with_break in zip(thinking.splitlines(), thinking.splitlines(keepends=True)):
        start, offset = offset, offset + len(with_break)
        sides = _arithmetic_sides(raw)
        if sides is None:
            continue
        if _continues(sides[0]):
            if previous is None:  # nothing to continue from: a bare result such as "= 52"
                last = evaluate(sides[-1]) if sides[-1] else None
                previous = last if last is not None else previous
                continue
            sides[0] = f"({previous}) {sides[0]}" if sides[0] else str(previous)
        if len(sides) < 2 or any(not s for s in sides):
            continue
        values = [evaluate(s) for s in sides]
        verdicts.append(LineVerdict(start, start + len(raw), None not in values and len(set(values)) == 1))
        previous = values[-1] if values[-1] is not None else previous
    return verdicts


def check_lines(thinking: str) -> TraceCheck:
    """Re-evaluate every arithmetic line of ``thinking`` (:func:`line_verdicts`) and read its result."""
    verdicts = line_verdicts(thinking)
    numbers = _NUMBER.findall(_THOUSANDS.sub("", thinking))
    return TraceCheck(len(verdicts), sum(v.correct for v in verdicts), numbers[-1] if numbers else None)


def is_number(text: str | None) -> bool:
    """Whether ``text`` is one number (``52``, ``-3``, ``2.5``, ``1,200``)."""
    return text is not None and _NUMBER.fullmatch(_THOUSANDS.sub("", text.strip())) is not None


def same_number(a: str | None, b: str | None) -> bool:
    """Whether two numeric strings are the same number (``"52"`` and ``"52.0"``); False when either is
    missing or not a number."""
    if a is None or b is None:
        return False
    try:
        return Fraction(_THOUSANDS.sub("", a.strip())) == Fraction(_THOUSANDS.sub("", b.strip()))
    except (ValueError, ZeroDivisionError):
        return False


def answer_follows(thinking: str, answer: str | None) -> bool:
    """Whether ``answer`` (the final answer, e.g. the content of ``\\boxed{}``) is the trace's result."""
    return same_number(check_lines(thinking).result, answer)


def trace_thinking_tokens(trace: str, tokenizer: Any) -> int:
    """Thinking tokens of ``trace`` written as a target (between the think tags of
    :func:`thinkbudget.protocol.format_response`), counted by the one parser."""
    from thinkbudget.parsing import get_parser
    from thinkbudget.protocol import format_response

    return get_parser(tokenizer).thinking_token_count(thinking_between_tags(format_response(trace, "")))


def full_trace_tokens(traces: dict[str, str] | None, tokenizer: Any) -> int | None:
    """Thinking tokens of a problem's full (finest, first) reference trace: how hard the problem is, in
    the unit of budgets. The one definition for evaluation's ``full_trace_tokens`` and auto mode's
    decisions (:mod:`thinkbudget.auto`); None for a problem without traces."""
    finest = next(iter(traces.values()), None) if traces else None
    return trace_thinking_tokens(finest, tokenizer) if finest else None


def thinking_between_tags(response: str) -> str:
    """The exact text between the think tags of a :func:`thinkbudget.protocol.format_response` target."""
    from thinkbudget.protocol import THINK_CLOSE, THINK_OPEN

    start = response.index(THINK_OPEN) + len(THINK_OPEN)
    return response[start : response.index(THINK_CLOSE)]


# The integer on the right of a line's last '=' (what :func:`corrupt_trace` changes), read from the raw line.
_RESULT = re.compile(r"=\s*(-?\d+)\s*$")


def corrupt_trace(thinking: str, rng: Any) -> tuple[str, str, str] | None:
    """One slip, as a policy makes it: one arithmetic line's result changed by 1-9, every later line that
    continues from it (``+ 8 = ...``) recomputed from the wrong value, so that the trace is consistent
    after the slip and exactly one line is wrong. Returns (new thinking, old result, new result), or
    None when no line qualifies (an integer result on the right of '=', the trace correct up to it, and
    no later line that restarts from a number of its own). ``rng``: a :class:`random.Random`.

    Why: a scorer that must tell a right trace from a wrong one learns to check the arithmetic from
    pairs that differ in one line and the numbers that follow from it, which the policy's own answers
    give rarely (a right and a wrong answer to one problem usually differ everywhere)."""
    check = check_lines(thinking)
    if not check.lines or check.correct != check.lines:
        return None  # nothing to check (the result alone), or already wrong
    lines = thinking.split("\n")
    # Arithmetic lines with a '=': (index, left side, integer result or None). The result is read from
    # the raw line, so that it is written back where it stands; a line whose cleaning changed it
    # ("15." or "1,200") has none.
    arith: list[tuple[int, str, int | None]] = []
    for i, raw in enumerate(lines):
        sides = _arithmetic_sides(raw)
        if sides is None or len(sides) < 2:
            continue
        m = _RESULT.search(raw)
        arith.append((i, sides[0], int(m.group(1)) if m and m.group(1) == sides[-1] else None))
    # A line qualifies when it computes something (a left side: not a bare "= 52") with an integer result
    # and every later arithmetic line continues from it with an integer result (the chain's running
    # value), so that the slip can be carried to the end.
    candidates = [
        k
        for k, (_, left, value) in enumerate(arith)
        if left and value is not None and all(_continues(x) and v is not None for _, x, v in arith[k + 1 :])
    ]
    if not candidates:
        return None
    k = rng.choice(candidates)
    old_result = str(arith[-1][2])
    value = arith[k][2]  # changed by 1-9; a value that was not negative stays so (as the chain's 0-99)
    value += rng.choice([d for d in range(-9, 10) if d and (value + d >= 0 or value < 0)])
    for j, (i, left, _) in enumerate(arith[k:], start=k):
        if j > k:  # recompute the continued line from the (wrong) running value
            v = evaluate(f"({value}) {left}")
            if v is None or v.denominator != 1:
                return None
            value = int(v)
        m = _RESULT.search(lines[i])
        lines[i] = lines[i][: m.start(1)] + str(value) + lines[i][m.end(1) :]
    new = "\n".join(lines)
    if check_lines(new).result != str(value):
        return None  # a number after the last line (prose): the trace's result would not be the slip's
    return new, old_result, str(value)
