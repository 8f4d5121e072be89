"""The one grader: is an answer correct? Rewards and evaluation both call :func:`is_correct`.

(Not to be confused with :mod:`thinkbudget.scorer`, the trained best-of-N scorer.)

Only the *answer section* (after ``</think>``) is ever scored, never the thinking. The final answer
is the last ``\\boxed{...}``; without one, math-verify's own extraction runs on the answer section
(so a base model that forgets the box is still judged on what it answered; the format reward, not
correctness, is where the missing box costs). Math answers are compared with math-verify
(``verify(parse(gold), parse(prediction))``, gold first). reasoning-gym tasks use the task's own
scorer on the extracted answer, and only an exact score of 1.0 counts (its scorers give partial
credit and some read the first number in a text). Model output never reaches ``eval``: math-verify
parses with a grammar (its expression fallback only admits digits and operators), and the
reasoning-gym families whose scorer evaluates the answer as code (:data:`UNSAFE_RG_FAMILIES`) are
refused.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)

REASONING_GYM_PREFIX = "rg/"
# reasoning-gym families whose scorer hands the model's answer to Python's eval() or to sympy's
# parse_expr (which runs eval): a completion such as \boxed{__import__("os").system(...)} would run
# during scoring, in GRPO rewards and in evaluation alike. Model output is untrusted, so these families
# are refused (tasks.validate_task_name names them) and never scored. Found by reading each family's
# score_answer in reasoning-gym 0.1.x; tests/test_reliability.py re-scans the installed package.
UNSAFE_RG_FAMILIES = (
    "binary_matrix",
    "countdown",
    "intermediate_integration",
    "n_queens",
    "polynomial_multiplication",
    "puzzle24",
    "simple_integration",
    "spiral_matrix",
    "string_insertion",
)


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces, else None."""
    if not text:
        return None
    best = None
    for marker in ("\\boxed{", "\\fbox{"):
        start = text.rfind(marker)
        if start >= 0 and (best is None or start > best[0]):
            best = (start, marker)
    if best is None:
        return None
    i = best[0] + len(best[1])
    depth, j = 1, i
    while j < len(text):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
        j += 1
    return None  # unbalanced: no well-formed box


def _timeout() -> int | None:
    # math-verify's timeouts use signals, which only work in the main thread.
    return 5 if threading.current_thread() is threading.main_thread() else None


@functools.lru_cache(maxsize=65536)
def _parse_gold(gold: str) -> Any:
    from math_verify import parse

    target = gold if "$" in gold or "\\" in gold else f"${gold}$"
    return parse(target, parsing_timeout=_timeout())


def math_equal(prediction: str, gold: str) -> bool:
    """math-verify equivalence of a predicted answer string and a gold answer string."""
    from math_verify import parse, verify

    try:
        pred = parse(f"\\boxed{{{prediction}}}", parsing_timeout=_timeout())
        if not pred:
            pred = parse(prediction, parsing_timeout=_timeout())
        gold_parsed = _parse_gold(str(gold))
        if not pred or not gold_parsed:
            return prediction.strip() == str(gold).strip()
        return bool(verify(gold_parsed, pred, timeout_seconds=_timeout()))
    except Exception:  # never raise on model output
        logger.debug("math-verify failed on %r vs %r", prediction, gold, exc_info=True)
        return False


def extract_final_answer(answer_text: str) -> str | None:
    """The final answer of an answer section: the last box, else math-verify's extraction."""
    boxed = extract_boxed(answer_text)
    if boxed is not None:
        return boxed
    if not answer_text or not answer_text.strip():
        return None
    try:
        from math_verify import parse

        found = parse(answer_text[-2000:], parsing_timeout=_timeout())
    except Exception:
        return None
    return str(found[-1]) if found else None


def unsafe_rg_family(name: str) -> bool:
    """Whether the reasoning-gym family ``name`` (without ``rg/``) scores by evaluating text as code.
    ``composite`` mixes families (any of them), so it is refused too."""
    return name in UNSAFE_RG_FAMILIES or name == "composite"


@functools.lru_cache(maxsize=512)
def _rg_score_fn(name: str):
    import reasoning_gym

    if unsafe_rg_family(name):  # never reached through validated tasks; a last line of defence
        raise ValueError(f"reasoning-gym family {name!r} scores answers with eval(); refused")
    return reasoning_gym.get_score_answer_fn(name)


def is_correct(answer_text: str, gold: str, *, task: str | None = None, meta: dict | None = None) -> bool:
    """Whether ``answer_text`` (the answer section of a parsed completion) answers ``gold``.

    ``task`` names the source task; tasks named ``rg/<name>`` are scored by reasoning-gym with the
    entry's ``meta`` (its metadata dict), everything else with math-verify.
    """
    if task and task.startswith(REASONING_GYM_PREFIX):
        if unsafe_rg_family(task[len(REASONING_GYM_PREFIX) :]):
            logger.error("%s: its scorer would eval() the model's answer; not scored (counted wrong)", task)
            return False
        final = extract_boxed(answer_text)
        if final is None:
            final = answer_text.strip().splitlines()[-1].strip() if answer_text.strip() else ""
        if not final:
            return False
        try:
            entry = {"answer": gold, "metadata": meta or {}}
            return float(_rg_score_fn(task[len(REASONING_GYM_PREFIX) :])(final, entry)) == 1.0
        except Exception:
            logger.debug("reasoning-gym scorer failed for %s", task, exc_info=True)
            return False
    final = extract_final_answer(answer_text)
    return final is not None and math_equal(final, gold)
