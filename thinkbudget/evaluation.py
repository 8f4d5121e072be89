"""Evaluation: what is measured, how it is aggregated, and the results schema.

One evaluation crosses tasks with *conditions* (a method and a budget):

========================  ========  ===========================================================
method                    mode      prompt
========================  ========  ===========================================================
``no_think``              no_think  ``enable_thinking=False``: the template pre-fills the empty block
``no_think_flag``         no_think  ``/no_think`` flag only, nothing pre-filled (compliance test)
``budget_prompt``         think     "Think for at most B tokens." stated in the prompt
``think``                 think     thinking with no budget
``think_flag``            think     ``/think`` flag only, no budget (the text-flag path of thinking on)
``budget_forcing``        think     unbudgeted prompt; ``</think>`` forced after B thinking tokens
``auto``                  auto      ``enable_thinking="auto"``: the model decides whether to think
``auto_flag``             auto      ``/auto_think`` flag only (the text-flag path of auto mode)
``auto_budget``           auto      auto mode with "Think for at most B tokens." stated
========================  ========  ===========================================================

Budgets on the command line are ``off`` (the no-think methods), ``none`` (``think``, ``think_flag``, ``auto``,
``auto_flag``) or a positive integer number of tokens (``budget_prompt``, ``budget_forcing``, ``auto_budget``).
The auto methods are opt-in (not in :data:`DEFAULT_METHODS`): a model not trained for auto mode reads its
sentence for the first time, which makes a baseline, not a result.

Every sample is parsed by :func:`thinkbudget.parsing.parse_completion` on its token ids (pre-filled
tokens included, so the pre-filled empty block reads as "no thinking") and scored by
:func:`thinkbudget.grading.is_correct` on the answer section: the numbers the RL rewards optimise.

Reward-hacking checks (per sample, reported as rates per condition):

- ``reasoning_after_think``: the answer section is longer than ``answer_cap`` tokens or holds
  :data:`STEP_LINES_MIN` or more calculation lines (lines with ``=``): reasoning moved past ``</think>``
  escapes a thinking budget.
- ``thinking_in_no_think``: a no-think answer with thinking tokens, or with a further think block
  after the pre-filled one.
- ``unclosed_think``: ``<think>`` opened and never closed (no answer section at all).
- ``padding``: a thinking section of at least :data:`PADDING_MIN_TOKENS` tokens that is mostly
  repeated word n-grams or filler (words without a letter or digit that are not arithmetic): length
  targets met with junk. Calibrated so that no training trace of any task is flagged.

Row metrics (one row per task, method and budget; ``None`` where a metric does not apply):
``n`` problems; ``accuracy`` (mean over problems of the share of correct samples) and
``accuracy_ci`` (95 % percentile bootstrap over problems); mean/median/p95 of ``thinking``,
``answer`` and ``total`` tokens; ``within_budget_rate`` (closed block and thinking <= B);
``relative_length_error`` (mean |n - B| / B, thinking tokens); ``step_correctness`` (share of the
thinking's arithmetic lines that re-evaluate correctly, :mod:`thinkbudget.traces`; ``trace_lines`` of
them); ``answer_follows_trace_rate`` (share of samples with thinking whose final answer is the
trace's last number); on budget rows ``budget_effect``, ``free_within_budget_rate`` and
``budget_use_need_more`` (:func:`add_budget_metrics`); ``no_think_compliance`` (no-think
rows: share with zero thinking tokens and no further think block); on auto rows ``think_rate`` (share
of samples that think), ``within_budget_when_thinking`` (auto_budget: within budget among those) and
``by_difficulty`` (:func:`difficulty_quartiles`: think rate, accuracy and tokens per quarter of the
problems ordered by their full reference trace's length); ``truncation_rate`` (hit
max_new_tokens without end-of-sequence); ``boxed_rate``; ``forced_rate`` (budget forcing); one
``<flag>_rate`` per hacking flag. With several samples per problem: ``pass_at_k`` (unbiased
estimator, k = 1, 2, 4, ..., N), ``majority_accuracy``, ``best_of_n_accuracy`` and
``mean_tokens_per_problem`` (all N samples' tokens: the cost of parallel test-time compute), and
``selectors``: accuracy and tokens per problem of every selector of :mod:`thinkbudget.selection` the
samples support (majority, log-probability, oracle; the trained scorer's best-of-N and weighted vote
once samples carry its scores, with the tokens it read added to their cost).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thinkbudget.grading import extract_final_answer, is_correct
from thinkbudget.parsing import ParsedCompletion, parse_completion
from thinkbudget.protocol import (
    ANSWER_CAP,
    EMPTY_THINK_BLOCK,
    THINK_OPEN,
    build_messages,
    encode_prompt,
    render_prompt,
    validate_budget,
)
from thinkbudget.selection import available_selectors, best_of_n, majority_vote, selector_at_n
from thinkbudget.traces import check_lines, full_trace_tokens, same_number

logger = logging.getLogger(__name__)

METHODS = (
    "no_think",
    "no_think_flag",
    "budget_prompt",
    "think",
    "think_flag",
    "budget_forcing",
    "auto",
    "auto_flag",
    "auto_budget",
)
AUTO_METHODS = ("auto", "auto_flag", "auto_budget")
# What an evaluation runs when no --methods are given: every method a thinkbudget checkpoint answers.
DEFAULT_METHODS = tuple(m for m in METHODS if m not in AUTO_METHODS)
METHOD_MODE = {
    "no_think": "no_think",
    "no_think_flag": "no_think",
    "budget_prompt": "think",
    "think": "think",
    "think_flag": "think",
    "budget_forcing": "think",
    "auto": "auto",
    "auto_flag": "auto",
    "auto_budget": "auto",
}
# Which kind of --budgets entry each method runs under.
METHOD_BUDGET_KIND = {
    "no_think": "off",
    "no_think_flag": "off",
    "budget_prompt": "int",
    "think": "none",
    "think_flag": "none",
    "budget_forcing": "int",
    "auto": "none",
    "auto_flag": "none",
    "auto_budget": "int",
}
# What each method puts in the prompt: a text flag, the enable_thinking keyword, and whether the budget
# is stated. One table, read by build_prompt.
METHOD_FLAG = {"no_think_flag": "no_think", "think_flag": "think", "auto_flag": "auto_think"}
METHOD_ENABLE_THINKING: dict[str, bool | str] = {"no_think": False, "auto": "auto", "auto_budget": "auto"}
BUDGET_STATED = ("budget_prompt", "auto_budget")
OFF, NONE = "off", "none"

# Hacking-check thresholds (see the module docstring).
STEP_LINES_MIN = 3
PADDING_MIN_TOKENS = 16
PADDING_RATE = 0.5
NGRAM = 4

REQUIRED_RESULT_KEYS = ("model", "commit", "device", "backend", "config", "rows", "throughput")
REQUIRED_ROW_KEYS = (
    "task",
    "mode",
    "method",
    "budget",
    "n",
    "accuracy",
    "accuracy_ci",
    "mean_thinking_tokens",
    "mean_answer_tokens",
    "mean_total_tokens",
    "within_budget_rate",
    "relative_length_error",
    "no_think_compliance",
    "truncation_rate",
)
REQUIRED_THROUGHPUT_KEYS = ("generated_tokens", "seconds", "tokens_per_second")


# ------------------------------------------------------------------------------------------------
# Conditions: what to run
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """One (task, method, budget) cell of an evaluation; ``budget`` in tokens or None."""

    task: str
    method: str
    budget: int | None

    @property
    def mode(self) -> str:
        return METHOD_MODE[self.method]

    @property
    def budget_label(self) -> str:
        kind = METHOD_BUDGET_KIND[self.method]
        return OFF if kind == "off" else (NONE if kind == "none" else str(self.budget))


def split_list(values: str | Iterable[Any] | None) -> list[str]:
    """``"a,b"``, ``["a", "b,c"]`` or ``[32, "none"]`` -> a flat list of stripped strings."""
    if values is None:
        return []
    items = [values] if isinstance(values, str | int) else list(values)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def parse_budgets(values: str | Iterable[Any]) -> list[int | str]:
    """Budgets from the command line: ``off``, ``none`` or positive integers (tokens), in order,
    without repeats. Raises ``ValueError`` naming the bad entry."""
    out: list[int | str] = []
    if isinstance(values, list | tuple):  # YAML 1.1 reads an unquoted `off` as false
        values = [OFF if v is False else v for v in values]
    for item in split_list(values):
        low = item.lower()
        if low in (OFF, NONE):
            value: int | str = low
        else:
            try:
                value = validate_budget(item, field="budget")
            except ValueError:
                raise ValueError(
                    f"budget {item!r} is not valid: use 'off' (thinking disabled), 'none' (thinking without "
                    "a budget) or a positive integer number of thinking tokens"
                ) from None
        if value not in out:
            out.append(value)
    if not out:
        raise ValueError("no budgets given: use e.g. --budgets off,32,64,128,256,none")
    return out


def parse_methods(values: str | Iterable[Any]) -> list[str]:
    """Method names, validated against :data:`METHODS`."""
    methods = []
    for m in split_list(values):
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; valid methods: {', '.join(METHODS)}")
        if m not in methods:
            methods.append(m)
    if not methods:
        raise ValueError(f"no methods given; valid methods: {', '.join(METHODS)}")
    return methods


def plan_conditions(
    tasks: Sequence[str], budgets: Sequence[int | str], methods: Sequence[str]
) -> list[Condition]:
    """Every (task, method, budget) to evaluate. A method with no budget of its kind, or a budget that
    no chosen method uses, is an error (it would silently evaluate nothing)."""
    ints = [b for b in budgets if isinstance(b, int)]
    by_kind: dict[str, list[int | None]] = {
        OFF: [None] if OFF in budgets else [],
        NONE: [None] if NONE in budgets else [],
    }
    by_kind["int"] = list(ints)
    for m in methods:
        kind = METHOD_BUDGET_KIND[m]
        if not by_kind[kind]:
            need = "an integer budget" if kind == "int" else f"the budget '{kind}'"
            raise ValueError(f"method {m!r} needs {need} in --budgets (got {', '.join(map(str, budgets))})")
    for b in budgets:
        kind = "int" if isinstance(b, int) else b
        if not any(METHOD_BUDGET_KIND[m] == kind for m in methods):
            users = [m for m in METHODS if METHOD_BUDGET_KIND[m] == kind]
            raise ValueError(
                f"budget {b!r} is used by none of the chosen methods (it needs one of {', '.join(users)})"
            )
    return [Condition(t, m, b) for t in tasks for m in methods for b in by_kind[METHOD_BUDGET_KIND[m]]]


# ------------------------------------------------------------------------------------------------
# Prompts
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prompt:
    """A rendered prompt. ``text``/``ids`` include ``prefill`` (tokens placed in the assistant turn
    before generation), which also counts as the start of the completion when parsing."""

    text: str
    ids: list[int]
    prefill: str
    prefill_ids: list[int]
    force_budget: int | None


def build_prompt(
    tokenizer: Any,
    question: str,
    condition: Condition,
    *,
    system_prompt: str | None = None,
    prefill_think: bool = False,
) -> Prompt:
    """The prompt of ``question`` under ``condition`` (see the module docstring's table).

    ``prefill_think`` pre-fills ``<think>`` in thinking modes (s1 style), for models that do not open
    the block themselves (a base model under budget forcing)."""
    m = condition.method
    messages = build_messages(question, system=system_prompt, flag=METHOD_FLAG.get(m))
    text = render_prompt(
        tokenizer,
        messages,
        enable_thinking=METHOD_ENABLE_THINKING.get(m, True),
        thinking_budget=condition.budget if m in BUDGET_STATED else None,
    )
    prefill = ""
    if m == "no_think" and text.endswith(EMPTY_THINK_BLOCK):
        text, prefill = text[: -len(EMPTY_THINK_BLOCK)], EMPTY_THINK_BLOCK
    elif condition.mode == "think" and prefill_think:
        prefill = THINK_OPEN
    # Prompt and pre-fill are tokenized apart so the pre-filled ids are exactly those of the completion;
    # the prompt by the one rule of every stage (encode_prompt: the tokenizer's own BOS, as in SFT and GRPO).
    ids = encode_prompt(tokenizer, text)
    prefill_ids = tokenizer(prefill, add_special_tokens=False)["input_ids"] if prefill else []
    force = condition.budget if m == "budget_forcing" else None
    return Prompt(text + prefill, ids + prefill_ids, prefill, prefill_ids, force)


# ------------------------------------------------------------------------------------------------
# Per-sample scoring and hacking checks
# ------------------------------------------------------------------------------------------------
def repeated_ngram_rate(text: str, n: int = NGRAM) -> float:
    """Share of word n-grams that repeat an earlier one (0 = all distinct, near 1 = a loop)."""
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


# Arithmetic written as words of its own ("=", "-", "*", "(") is reasoning, not filler: half the words
# of every nested-expression trace are operators. Calibrated on the tasks' own training traces, which
# the padding check must never flag (tests/test_metrics.py checks every family's traces).
MATH_SYMBOLS = frozenset("=+-*/×÷^()[]{}<>%,:")


def filler_share(text: str) -> float:
    """Share of words with no letter or digit that are not arithmetic ('...', '!!!', '~~~')."""
    words = text.split()
    if not words:
        return 0.0
    filler = sum(1 for w in words if not any(c.isalnum() for c in w) and not set(w) <= MATH_SYMBOLS)
    return filler / len(words)


_BOXED = re.compile(r"\\(?:boxed|fbox)\{[^{}]*\}")


def step_lines(text: str) -> int:
    """Lines that look like calculation steps (contain '=' outside a ``\\boxed{}``)."""
    return sum(1 for line in text.splitlines() if "=" in _BOXED.sub("", line))


def hack_flags(parsed: ParsedCompletion, mode: str, answer_cap: int) -> dict[str, bool]:
    """The reward-hacking flags of one parsed completion (see the module docstring)."""
    thinking = parsed.thinking
    padded = parsed.thinking_tokens >= PADDING_MIN_TOKENS and (
        repeated_ngram_rate(thinking) >= PADDING_RATE or filler_share(thinking) >= PADDING_RATE
    )
    return {
        "reasoning_after_think": parsed.answer_tokens > answer_cap
        or step_lines(parsed.answer) >= STEP_LINES_MIN,
        "thinking_in_no_think": mode == "no_think" and not parsed.no_think_compliant,
        "unclosed_think": parsed.think_opened and not parsed.think_closed,
        "padding": padded,
    }


def sample_key(task: str, method: str, budget_label: str, problem_id: str, sample_idx: int) -> str:
    """The resume key of one sample."""
    return json.dumps([task, method, budget_label, problem_id, sample_idx])


def make_record(
    tokenizer: Any,
    *,
    condition: Condition,
    problem: Any,
    sample_idx: int,
    prompt: Prompt,
    token_ids: Sequence[int],
    finish_reason: str,
    forced: bool = False,
    mean_logprob: float | None = None,
    answer_cap: int = ANSWER_CAP,
) -> dict[str, Any]:
    """One line of samples.jsonl: the prompt, the completion, its token counts, correctness, flags."""
    parsed = parse_completion(list(prompt.prefill_ids) + list(token_ids), tokenizer)
    correct = is_correct(parsed.answer, problem.answer, task=problem.task, meta=problem.meta)
    budget = condition.budget
    final_answer = extract_final_answer(parsed.answer)
    check = check_lines(parsed.thinking) if parsed.thinking_tokens else None
    return {
        "key": sample_key(condition.task, condition.method, condition.budget_label, problem.id, sample_idx),
        "task": condition.task,
        "method": condition.method,
        "mode": condition.mode,
        "budget": budget,
        "budget_label": condition.budget_label,
        "problem_id": problem.id,
        "sample_idx": sample_idx,
        "prompt": prompt.text,
        "completion": tokenizer.decode(list(token_ids), skip_special_tokens=False),
        "completion_ids": list(token_ids),
        "question": problem.question,  # what a scorer reads, with prefill + completion (never the gold)
        "prefill": prompt.prefill,
        "gold": problem.answer,
        "final_answer": final_answer,
        "correct": bool(correct),
        "thinking_tokens": parsed.thinking_tokens,
        "answer_tokens": parsed.answer_tokens,
        "total_tokens": parsed.total_tokens,
        "generated_tokens": len(token_ids),
        "finish_reason": finish_reason,
        "truncated": finish_reason == "length",
        "forced": bool(forced),
        "think_opened": parsed.think_opened,
        "think_closed": parsed.think_closed,
        "extra_think_tags": parsed.extra_think_tags,
        "has_boxed": parsed.has_boxed,
        "within_budget": parsed.within_budget(budget) if budget is not None else None,
        "mean_logprob": mean_logprob,
        "repeated_ngram_rate": repeated_ngram_rate(parsed.thinking),
        "filler_share": filler_share(parsed.thinking),
        "answer_step_lines": step_lines(parsed.answer),
        # Is the reasoning right (thinkbudget.traces): its arithmetic lines re-evaluated, its last number,
        # and whether the answer is that number; None where nothing was thought.
        "trace_lines": check.lines if check else 0,
        "trace_lines_correct": check.correct if check else 0,
        "trace_result": check.result if check else None,
        "answer_follows_trace": same_number(check.result, final_answer) if check else None,
        # Thinking tokens of the problem's full (finest) reference trace: which budgets it needs.
        "full_trace_tokens": full_trace_tokens(problem.traces, tokenizer),
        "flags": hack_flags(parsed, condition.mode, answer_cap),
    }


# ------------------------------------------------------------------------------------------------
# samples.jsonl: append per batch, read back for resuming
# ------------------------------------------------------------------------------------------------
def append_records(path: str | os.PathLike, records: Sequence[dict[str, Any]]) -> None:
    """Append records and force them to disk, so a kill loses at most the batch being generated."""
    with open(path, "a", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def load_records(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Records of samples.jsonl by key. A line cut by a kill and repeated keys are dropped, and the file
    is rewritten without them (atomically) so that appending continues on a clean line."""
    path = Path(path)
    if not path.is_file():
        return {}
    records: dict[str, dict[str, Any]] = {}
    bad = 0
    lines = path.read_text(encoding="utf-8").splitlines()
    for line in lines:
        try:
            rec = json.loads(line)
            key = rec["key"]
        except (json.JSONDecodeError, KeyError, TypeError):
            bad += 1
            continue
        if key in records:
            bad += 1
            continue
        records[key] = rec
    if bad or (path.stat().st_size and not path.read_bytes().endswith(b"\n")):
        logger.warning(
            "%s: dropped %d broken or repeated lines (an interrupted run); rewriting it", path, bad
        )
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records.values()), encoding="utf-8"
        )
        tmp.replace(path)
    return records


# ------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------
def bootstrap_ci(
    values: Sequence[float], *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean of ``values`` (None, None for no values)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return None, None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def wilson_interval(successes: int, n: int, *, z: float = 1.96) -> tuple[float | None, float | None]:
    """95 % Wilson score interval of a proportion (the interval of a rate such as within-budget: unlike a
    bootstrap it does not collapse to [1, 1] when every sample succeeds). (None, None) for n = 0."""
    if n <= 0:
        return None, None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_bootstrap(
    a: dict[str, float], b: dict[str, float], *, ci_resamples: int = 1000, seed: int = 0
) -> dict[str, Any] | None:
    """Mean of ``a[p] - b[p]`` over the problems ``p`` both hold and its 95 % paired bootstrap interval
    over problems; None when none is shared."""
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    diff = [a[p] - b[p] for p in shared]
    lo, hi = bootstrap_ci(diff, resamples=ci_resamples, seed=seed)
    return {"difference": sum(diff) / len(diff), "ci": [lo, hi], "n": len(shared)}


def ratio_ci(
    numerators: Sequence[float],
    denominators: Sequence[float],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float | None, float | None, float | None]:
    """``sum(num) / sum(den)`` and its percentile bootstrap interval, resampling the pairs (one pair per
    problem: e.g. correct lines and lines of its trace). (None, None, None) when the denominators sum to 0."""
    num, den = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    if num.size == 0 or den.sum() <= 0:
        return None, None, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, num.size, size=(resamples, num.size))
    d = den[idx].sum(axis=1)
    ratios = np.where(d > 0, num[idx].sum(axis=1) / np.where(d > 0, d, 1), np.nan)
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.nanpercentile(ratios, [tail, 100 - tail])
    return float(num.sum() / den.sum()), float(lo), float(hi)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k) for n samples with c correct."""
    if k > n or k < 1:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_at_k_values(n_samples: int) -> list[int]:
    """k = 1, 2, 4, ... up to and including ``n_samples``."""
    ks, k = [], 1
    while k < n_samples:
        ks.append(k)
        k *= 2
    return ks + [n_samples]


def _stats(values: Sequence[float], prefix: str, suffix: str) -> dict[str, float | None]:
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return {
            f"mean_{prefix}{suffix}": None,
            f"median_{prefix}{suffix}": None,
            f"p95_{prefix}{suffix}": None,
        }
    return {
        f"mean_{prefix}{suffix}": float(x.mean()),
        f"median_{prefix}{suffix}": float(np.median(x)),
        f"p95_{prefix}{suffix}": float(np.percentile(x, 95)),
    }


def _rate(flags: Iterable[bool]) -> float | None:
    flags = list(flags)
    return float(np.mean(flags)) if flags else None


def aggregate(
    records: Iterable[dict[str, Any]],
    conditions: Sequence[Condition],
    *,
    samples: int = 1,
    best_of_n_scorer: str = "logprob",
    ci_resamples: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row of metrics per condition (the fields are listed in the module docstring)."""
    records = list(records)
    by_cond: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_cond[(r["task"], r["method"], r["budget_label"])].append(r)
    rows = []
    for cond in conditions:
        recs = sorted(by_cond.get((cond.task, cond.method, cond.budget_label), []), key=lambda r: r["key"])
        by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in recs:
            by_problem[r["problem_id"]].append(r)
        per_problem_acc = [float(np.mean([r["correct"] for r in rs])) for rs in by_problem.values()]
        lo, hi = bootstrap_ci(per_problem_acc, resamples=ci_resamples, seed=seed)
        budget = cond.budget
        row: dict[str, Any] = {
            "task": cond.task,
            "mode": cond.mode,
            "method": cond.method,
            "budget": budget,
            "budget_label": cond.budget_label,
            "n": len(by_problem),
            "samples_per_problem": samples,
            "num_samples": len(recs),
            "accuracy": float(np.mean(per_problem_acc)) if per_problem_acc else None,
            "accuracy_ci": [lo, hi],
        }
        for kind in ("thinking", "answer", "total"):
            row.update(_stats([r[f"{kind}_tokens"] for r in recs], kind, "_tokens"))
        with_budget = budget is not None and bool(recs)
        rel = [abs(r["thinking_tokens"] - budget) / budget for r in recs] if with_budget else []
        row["within_budget_rate"] = _rate(r["within_budget"] for r in recs) if with_budget else None
        row["relative_length_error"] = float(np.mean(rel)) if rel else None
        row["median_relative_length_error"] = float(np.median(rel)) if rel else None
        no_think = cond.mode == "no_think"
        row["no_think_compliance"] = (
            # the negated flag, i.e. ParsedCompletion.no_think_compliant of each sample
            _rate(not r["flags"]["thinking_in_no_think"] for r in recs) if no_think else None
        )
        row["truncation_rate"] = _rate(r["truncated"] for r in recs)
        row["boxed_rate"] = _rate(r["has_boxed"] for r in recs)
        row["forced_rate"] = _rate(r["forced"] for r in recs) if cond.method == "budget_forcing" else None
        for flag in ("reasoning_after_think", "thinking_in_no_think", "unclosed_think", "padding"):
            applies = flag != "thinking_in_no_think" or no_think
            row[f"{flag}_rate"] = _rate(r["flags"][flag] for r in recs) if applies else None
        lines = sum(r.get("trace_lines", 0) for r in recs)
        row["trace_lines"] = lines
        row["step_correctness"] = (
            sum(r.get("trace_lines_correct", 0) for r in recs) / lines if lines else None
        )
        row["answer_follows_trace_rate"] = _rate(
            r["answer_follows_trace"] for r in recs if r.get("answer_follows_trace") is not None
        )
        row["mean_repeated_ngram_rate"] = _rate(r["repeated_ngram_rate"] for r in recs)
        row["mean_filler_share"] = _rate(r["filler_share"] for r in recs)
        auto = cond.mode == "auto"
        row["think_rate"] = _rate(r["thinking_tokens"] > 0 for r in recs) if auto else None
        row["within_budget_when_thinking"] = (
            _rate(r["within_budget"] for r in recs if r["thinking_tokens"] > 0)
            if auto and with_budget
            else None
        )
        row["by_difficulty"] = difficulty_quartiles(recs) if auto else None
        if samples > 1:
            row.update(_parallel_metrics(by_problem, samples, best_of_n_scorer))
        rows.append(row)
    return add_budget_metrics(rows, records)


def difficulty_quarters(
    records: Sequence[dict[str, Any]],
) -> list[list[tuple[str, list[dict[str, Any]]]]] | None:
    """The problems of ``records`` ordered by difficulty (their full reference trace's thinking tokens,
    ``full_trace_tokens``; ties broken by problem id) and split into four quarters, easiest first: per
    quarter, (problem id, its samples) pairs. None when a problem has no reference trace or there are fewer
    than four problems."""
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_problem[r["problem_id"]].append(r)
    if len(by_problem) < 4 or any(rs[0].get("full_trace_tokens") is None for rs in by_problem.values()):
        return None
    ordered = sorted(by_problem.items(), key=lambda kv: (kv[1][0]["full_trace_tokens"], kv[0]))
    return [[ordered[i] for i in part] for part in np.array_split(np.arange(len(ordered)), 4)]


def difficulty_quartiles(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Per quarter of :func:`difficulty_quarters`: ``n`` problems, the trace-length range, ``think_rate``,
    ``accuracy`` and ``mean_total_tokens``. Whether an auto decision follows difficulty. None where
    :func:`difficulty_quarters` is."""
    quarters = difficulty_quarters(records)
    if quarters is None:
        return None
    out = []
    for q, group in enumerate(quarters, start=1):
        recs = [r for _, rs in group for r in rs]
        out.append(
            {
                "quarter": q,
                "n": len(group),
                "full_trace_tokens": [
                    group[0][1][0]["full_trace_tokens"],
                    group[-1][1][0]["full_trace_tokens"],
                ],
                "think_rate": _rate(r["thinking_tokens"] > 0 for r in recs),
                "accuracy": _rate(r["correct"] for r in recs),
                "mean_total_tokens": _rate(r["total_tokens"] for r in recs),
            }
        )
    return out


def add_budget_metrics(rows: list[dict[str, Any]], records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Metrics of a stated budget that need another condition or the problem's reference trace, added to
    each ``budget_prompt`` row (None where they cannot be computed):

    - ``free_within_budget_rate``: share of the same task's free-thinking samples (``think``) that closed
      their block within B tokens; ``budget_effect`` = ``within_budget_rate`` minus it (what stating B
      changes, rather than what the model would have done anyway);
    - on the problems whose full reference trace needs more than B tokens (``n_need_more`` samples):
      ``mean_thinking_tokens_need_more`` and ``budget_use_need_more`` (mean thinking / B).
    """
    by_cond: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_cond[(r["task"], r["method"], r["budget_label"])].append(r)
    for row in rows:
        if row["method"] != "budget_prompt" or row["budget"] is None:
            continue
        budget = row["budget"]
        free = by_cond.get((row["task"], "think", NONE), [])
        under = [bool(r.get("think_closed")) and r["thinking_tokens"] <= budget for r in free]
        row["free_within_budget_rate"] = _rate(under)
        wb = row.get("within_budget_rate")
        row["budget_effect"] = wb - row["free_within_budget_rate"] if free and wb is not None else None
        recs = by_cond.get((row["task"], "budget_prompt", str(budget)), [])
        need = [r for r in recs if (r.get("full_trace_tokens") or 0) > budget]
        row["n_need_more"] = len(need)
        row["mean_thinking_tokens_need_more"] = _rate(r["thinking_tokens"] for r in need)
        row["budget_use_need_more"] = _rate(r["thinking_tokens"] / budget for r in need)
    return rows


def _parallel_metrics(
    by_problem: dict[str, list[dict[str, Any]]], samples: int, scorer: str
) -> dict[str, Any]:
    """pass@k, majority vote and best-of-N over the N samples of each problem, with the tokens all
    N samples cost (parallel test-time compute is paid N times)."""
    groups = [sorted(rs, key=lambda r: r["sample_idx"]) for rs in by_problem.values()]
    score_field = "mean_logprob" if scorer == "logprob" else "reward_score"
    out: dict[str, Any] = {"pass_at_k": {}, "best_of_n_scorer": scorer}
    for k in pass_at_k_values(samples):
        vals = [pass_at_k(len(g), sum(r["correct"] for r in g), k) for g in groups if len(g) >= k]
        out["pass_at_k"][str(k)] = float(np.mean(vals)) if vals else None
    out["majority_accuracy"] = _rate(
        majority_vote([r["final_answer"] for r in g], [r["correct"] for r in g]) for g in groups
    )
    out["best_of_n_accuracy"] = _rate(
        best_of_n([r.get(score_field) for r in g], [r["correct"] for r in g]) for g in groups
    )
    out["mean_tokens_per_problem"] = _rate(sum(r["total_tokens"] for r in g) for g in groups)
    out["mean_thinking_tokens_per_problem"] = _rate(sum(r["thinking_tokens"] for r in g) for g in groups)
    # Every selector the records support, each with all it costs (scorer reads included): see
    # thinkbudget.selection.
    out["selectors"] = {}
    for name in available_selectors(groups):
        picks = [selector_at_n(name, g, len(g)) for g in groups]
        out["selectors"][name] = {
            "accuracy": _rate(p["accuracy"] for p in picks),
            "mean_tokens_per_problem": _rate(p["generated_tokens"] + p["scorer_tokens"] for p in picks),
        }
    return out


# ------------------------------------------------------------------------------------------------
# Results schema and the Markdown summary
# ------------------------------------------------------------------------------------------------
def validate_results(results: dict[str, Any], source: str = "results") -> None:
    """Raise ``ValueError`` naming the first missing key of a results.json object."""
    for key in REQUIRED_RESULT_KEYS:
        if key not in results:
            raise ValueError(f"{source}: missing key {key!r}")
    for i, row in enumerate(results["rows"]):
        for key in REQUIRED_ROW_KEYS:
            if key not in row:
                raise ValueError(f"{source}: rows[{i}] is missing {key!r}")
    for key in REQUIRED_THROUGHPUT_KEYS:
        if key not in results["throughput"]:
            raise ValueError(f"{source}: throughput is missing {key!r}")


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``results.json`` (a folder holding one, or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (not an evaluation folder?)")
    try:
        results = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(results, dict):
        raise ValueError(f"{path}: not a results object")
    if results.get("complete") is False or "rows" not in results:
        raise ValueError(
            f"{path}: the evaluation is not complete (killed or failed?); run eval/evaluate.py again with the "
            "same --output to finish it"
        )
    validate_results(results, str(path))
    return results


def fmt(value: Any, kind: str = "float") -> str:
    """A table cell: percentages for rates, one decimal for token counts, '–' for not applicable."""
    if value is None:
        return "–"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "tokens":
        return f"{value:.1f}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def fmt_accuracy_ci(row: dict[str, Any]) -> str:
    """The accuracy cell of a table: ``12.5% (0.0%–37.5%)``, or '–' without an interval."""
    lo, hi = row["accuracy_ci"]
    return f"{fmt(row['accuracy'], 'pct')} ({fmt(lo, 'pct')}–{fmt(hi, 'pct')})" if lo is not None else "–"


def engine_lines(stats: dict[str, float] | None) -> list[str]:
    """summary.md's line on where the cached engine's time went (none for the other backends)."""
    if not stats or not stats.get("steps"):
        return []
    return [
        f"- of which reading prompts {stats['prefill_s']:.1f} s ({stats['prefill_positions']:,} positions, "
        f"{stats['prefill_calls']:,} calls) and decoding {stats['step_s']:.1f} s ({stats['steps']:,} steps, "
        f"{stats['step_rows'] / stats['steps']:.1f} rows a step on average)"
    ]


def summary_markdown(results: dict[str, Any]) -> str:
    """The summary.md of one evaluation: provenance and one table row per condition."""
    cfg = results.get("config", {})
    tp = results["throughput"]
    lines = [
        f"# Evaluation of `{results['model']}`",
        "",
        f"- commit `{results['commit']}`, device {results['device']}, backend `{results['backend']}`",
        f"- sampling: temperature {cfg.get('temperature')}, top_p {cfg.get('top_p')}, top_k {cfg.get('top_k')}, "
        f"max_new_tokens {cfg.get('max_new_tokens')}, seed {cfg.get('seed')}, samples {cfg.get('samples')}",
        f"- throughput: {tp['generated_tokens']} tokens in {tp['seconds']:.1f} s "
        f"({fmt(tp['tokens_per_second'], 'tokens')} tokens/s) this session",
        *engine_lines(tp.get("engine")),
        f"- problems: the {cfg.get('split', 'test')} split"
        + ("" if cfg.get("split", "test") == "test" else " (not held out: training data, not a result)"),
        "- token counts are mean / p95 (thinking, answer); accuracy with its 95% bootstrap interval",
        "",
        "| task | method | budget | n | accuracy (95% CI) | thinking | answer | total | within budget | "
        "rel. error | no-think compl. | truncated | after-think | unclosed | padding |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        ci = fmt_accuracy_ci(r)
        lines.append(
            f"| {r['task']} | {r['method']} | {r.get('budget_label', r['budget'])} | {r['n']} | {ci} | "
            f"{fmt(r['mean_thinking_tokens'], 'tokens')} / {fmt(r.get('p95_thinking_tokens'), 'tokens')} | "
            f"{fmt(r['mean_answer_tokens'], 'tokens')} / {fmt(r.get('p95_answer_tokens'), 'tokens')} | "
            f"{fmt(r['mean_total_tokens'], 'tokens')} | {fmt(r['within_budget_rate'], 'pct')} | "
            f"{fmt(r['relative_length_error'], 'pct')} | {fmt(r['no_think_compliance'], 'pct')} | "
            f"{fmt(r['truncation_rate'], 'pct')} | {fmt(r.get('reasoning_after_think_rate'), 'pct')} | "
            f"{fmt(r.get('unclosed_think_rate'), 'pct')} | {fmt(r.get('padding_rate'), 'pct')} |"
        )
    lines += [
        "",
        "## Does thinking pay",
        "",
        "Step correctness: share of the traces' arithmetic lines that re-evaluate correctly (lines counted); "
        "answer follows trace: share of answers equal to the trace's last number; budget effect: within "
        "budget with the budget stated minus free thinking's share under the same number of tokens; budget "
        "use: mean thinking / budget on the problems whose full reference trace needs more than the budget.",
        "",
        "| task | method | budget | accuracy | step correctness (lines) | answer follows trace | "
        "budget effect | budget use (n) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        if r["mode"] == "no_think":
            continue
        lines.append(
            f"| {r['task']} | {r['method']} | {r.get('budget_label', r['budget'])} | {fmt(r['accuracy'], 'pct')} | "
            f"{fmt(r.get('step_correctness'), 'pct')} ({r.get('trace_lines', '–')}) | "
            f"{fmt(r.get('answer_follows_trace_rate'), 'pct')} | {fmt(r.get('budget_effect'), 'pct')} | "
            f"{fmt(r.get('budget_use_need_more'), 'pct')} ({r.get('n_need_more', '–')}) |"
        )
    auto = [r for r in results["rows"] if r["mode"] == "auto"]
    if auto:
        lines += [
            "",
            "## Auto mode: does the model think where it must",
            "",
            "Think rate: share of samples that think; per quarter of the problems ordered by the length of their "
            "full reference trace (easiest first): think rate / accuracy.",
            "",
            "| task | method | budget | accuracy | mean total tokens | think rate | within budget when thinking | "
            "Q1 | Q2 | Q3 | Q4 |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in auto:
            quarters = r.get("by_difficulty") or []
            cells = [f"{fmt(q['think_rate'], 'pct')} / {fmt(q['accuracy'], 'pct')}" for q in quarters]
            cells += ["–"] * (4 - len(cells))
            lines.append(
                f"| {r['task']} | {r['method']} | {r.get('budget_label', r['budget'])} | {fmt(r['accuracy'], 'pct')} | "
                f"{fmt(r['mean_total_tokens'], 'tokens')} | {fmt(r.get('think_rate'), 'pct')} | "
                f"{fmt(r.get('within_budget_when_thinking'), 'pct')} | " + " | ".join(cells) + " |"
            )
    parallel = [r for r in results["rows"] if "pass_at_k" in r]
    if parallel:
        ks = list(parallel[0]["pass_at_k"])
        scored = any("scorer" in r.get("selectors", {}) for r in parallel)
        extra = " scorer best-of-N | scorer-weighted majority | tokens with scorer |" if scored else ""
        lines += [
            "",
            f"## Parallel test-time compute ({cfg.get('samples')} samples per problem; best-of-N by "
            f"{parallel[0]['best_of_n_scorer']})",
            "",
            "| task | method | budget | " + " | ".join(f"pass@{k}" for k in ks) + " | majority | best-of-N | "
            "tokens per problem |" + extra,
            "|---|---|---|" + "---|" * (len(ks) + 3 + (3 if scored else 0)),
        ]
        for r in parallel:
            line = (
                f"| {r['task']} | {r['method']} | {r.get('budget_label', r['budget'])} | "
                + " | ".join(fmt(r["pass_at_k"][k], "pct") for k in ks)
                + f" | {fmt(r['majority_accuracy'], 'pct')} | {fmt(r['best_of_n_accuracy'], 'pct')} | "
                f"{fmt(r['mean_tokens_per_problem'], 'tokens')} |"
            )
            if scored:
                sel = r.get("selectors", {})
                best, vote = sel.get("scorer", {}), sel.get("scorer_majority", {})
                line += (
                    f" {fmt(best.get('accuracy'), 'pct')} | {fmt(vote.get('accuracy'), 'pct')} | "
                    f"{fmt(best.get('mean_tokens_per_problem'), 'tokens')} |"
                )
            lines.append(line)
    return "\n".join(lines) + "\n"


def samples_of(
    records: Iterable[dict[str, Any]], task: str, method: str, budget_label: str
) -> list[dict[str, Any]]:
    """The samples of one condition (task, method, budget label)."""
    return [
        r
        for r in records
        if r["task"] == task and r["method"] == method and str(r["budget_label"]) == budget_label
    ]


def per_problem(
    records: Iterable[dict[str, Any]],
    task: str,
    method: str,
    budget_label: str,
    value: Callable[[dict[str, Any]], float],
) -> dict[str, float]:
    """``value(sample)`` averaged per problem over the samples of one condition."""
    acc: dict[str, list[float]] = defaultdict(list)
    for r in samples_of(records, task, method, budget_label):
        acc[r["problem_id"]].append(float(value(r)))
    return {p: sum(v) / len(v) for p, v in acc.items()}


def paired_difference(
    records_a: Sequence[dict[str, Any]],
    records_b: Sequence[dict[str, Any]],
    task: str,
    method: str | tuple[str, str],
    budget_label: str | tuple[str, str],
    metric: str,
    *,
    ci_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Condition A minus condition B on the same problems: per problem the mean of ``metric`` (a
    sample field such as ``correct`` or ``within_budget``; None counts 0) over its samples, then the
    mean difference over the problems both hold and its 95 % paired bootstrap interval. ``method``
    and ``budget_label`` may be pairs ``(A's, B's)``. None when no problem is shared."""

    def value(r: dict[str, Any]) -> float:
        return float(bool(r.get(metric)))

    ma, mb = (method, method) if isinstance(method, str) else method
    ba, bb = (budget_label, budget_label) if isinstance(budget_label, str) else budget_label
    a, b = per_problem(records_a, task, ma, ba, value), per_problem(records_b, task, mb, bb, value)
    d = paired_bootstrap(a, b, ci_resamples=ci_resamples, seed=seed)
    return None if d is None else {**d, "metric": metric}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which (tokens, accuracy) points no other point beats: fewer or equal tokens with at least equal
    accuracy, strictly better in one. Ties in both are all on the front."""
    flags = []
    for i, (t, a) in enumerate(points):
        dominated = any(
            (t2 <= t and a2 >= a) and (t2 < t or a2 > a) for j, (t2, a2) in enumerate(points) if j != i
        )
        flags.append(not dominated)
    return flags
