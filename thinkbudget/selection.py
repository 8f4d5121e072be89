"""Choosing one answer among N samples of a problem, and what the choice costs in tokens.

Selectors (:data:`SELECTORS`), each a pure function of a group of sample records (the lines of an
evaluation's ``samples.jsonl``: ``final_answer``, ``correct``, ``mean_logprob``, ``total_tokens`` and,
once a scorer has read them, ``reward_score`` and ``scorer_tokens``):

==================  ==========================================================  =====================
selector            picks                                                        reads the gold?
==================  ==========================================================  =====================
``majority``        the most frequent final answer (self-consistency)            no
``logprob``         the sample with the highest mean token log-probability       no
``scorer``          the sample the trained scorer rates highest (best-of-N)      no
``scorer_majority`` the answer with the largest summed scorer weight              no
                    (weights: softmax of the group's scores)
``oracle``          any correct sample (pass@N): an upper bound, not a method     **yes**
==================  ==========================================================  =====================

With one sample every selector returns that sample; the frontier calls this point ``single``.

Cost (:func:`selection_cost`): every selector pays for all N samples it generated, thinking plus
answer tokens as the one parser counts them (``total_tokens``); the scorer-based selectors also pay
for every token the scorer reads (``scorer_tokens``: its whole input, so the question once per sample,
and the completion). The policy's prompt tokens are not counted, for any selector.
Majority vote and log-probability need nothing beyond generation (the log-probabilities come with
it); the oracle's cost is the generation's, but it reads the gold, so it is reported as a reference
and never placed on a Pareto front.

Subsampling (:func:`subsample_blocks`): the selector's accuracy at n < N samples is its mean over the
``N // n`` disjoint blocks of consecutive sample indices (samples 0..n-1, n..2n-1, ...). Samples are
drawn independently, so each block is a fair draw of n samples; the cost at n is the mean of the
blocks' summed tokens, which is exactly n times the mean per-sample cost when n divides N.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

SELECTORS = ("majority", "logprob", "scorer", "scorer_majority", "oracle")
SCORER_SELECTORS = ("scorer", "scorer_majority")
REFERENCE_SELECTORS = ("oracle",)  # read the gold: shown for reference, never on a Pareto front
SINGLE = "single"  # the name of every selector at one sample
SELECTOR_LABELS = {
    SINGLE: "one sample",
    "majority": "majority vote",
    "logprob": "best-of-N by log-probability",
    "scorer": "best-of-N by the trained scorer",
    "scorer_majority": "scorer-weighted majority vote",
    "oracle": "oracle pass@N (reads the gold)",
}


def normalize_answer(answer: str) -> str:
    """An answer for voting: spaces, commas, ``\\!`` and a final period removed."""
    return re.sub(r"\s+", "", answer).rstrip(".").replace("\\!", "").replace(",", "")


def weighted_majority_vote(
    answers: Sequence[str | None], weights: Sequence[float], correct: Sequence[bool]
) -> bool:
    """Whether the answer with the largest summed weight is correct (answers compared after
    :func:`normalize_answer`; ties go to the answer seen first; no answer never wins)."""
    keys = [normalize_answer(a) if a else None for a in answers]
    totals: dict[str, float] = {}
    for k, w in zip(keys, weights):
        if k:
            totals[k] = totals.get(k, 0.0) + w
    if not totals:
        return False
    top = max(totals.values())
    winner = next(k for k in keys if k and totals[k] == top)
    return bool(correct[keys.index(winner)])


def majority_vote(answers: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """Whether the most frequent final answer is correct (answers compared after removing spaces,
    commas and a final period; ties go to the answer seen first; no answer never wins)."""
    return weighted_majority_vote(answers, [1.0] * len(answers), correct)


def best_of_n(scores: Sequence[float | None], correct: Sequence[bool]) -> bool:
    """Whether the sample with the highest score is correct (missing scores rank last; ties go to the
    first sample)."""
    if not correct:
        return False
    ranked = [-math.inf if s is None else s for s in scores]
    return bool(correct[ranked.index(max(ranked))])


def softmax_weights(scores: Sequence[float | None]) -> list[float]:
    """Vote weights from scorer scores: ``exp(s - max)`` normalised to sum 1 (a missing score weighs 0).
    Only score differences within the group matter, so a scorer trained on pairs (whose scores have
    no fixed zero) weighs votes the same whatever offset it learned."""
    known = [s for s in scores if s is not None]
    if not known:
        return [0.0] * len(scores)
    top = max(known)
    raw = [0.0 if s is None else math.exp(s - top) for s in scores]
    total = sum(raw)
    return [r / total for r in raw]


def select(selector: str, group: Sequence[dict[str, Any]]) -> bool:
    """Whether ``selector`` picks a correct answer from ``group`` (the records of one problem)."""
    correct = [bool(r["correct"]) for r in group]
    answers = [r.get("final_answer") for r in group]
    if selector == SINGLE:
        if len(group) != 1:
            raise ValueError(f"'{SINGLE}' is the selector of one sample, got {len(group)}")
        return correct[0]
    if selector == "majority":
        return majority_vote(answers, correct)
    if selector == "logprob":
        return best_of_n([r.get("mean_logprob") for r in group], correct)
    if selector == "scorer":
        return best_of_n([r.get("reward_score") for r in group], correct)
    if selector == "scorer_majority":
        return weighted_majority_vote(
            answers, softmax_weights([r.get("reward_score") for r in group]), correct
        )
    if selector == "oracle":
        return any(correct)
    raise ValueError(f"unknown selector {selector!r}; valid: {', '.join((SINGLE, *SELECTORS))}")


def selection_cost(selector: str, group: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """(generated tokens, scorer tokens) that ``selector`` spends on ``group``: every sample's thinking
    + answer tokens, plus every token the scorer reads for the scorer-based selectors."""
    generated = sum(int(r["thinking_tokens"]) + int(r["answer_tokens"]) for r in group)
    if selector not in SCORER_SELECTORS:
        return generated, 0
    missing = [r.get("key", "?") for r in group if r.get("scorer_tokens") is None]
    if missing:
        raise ValueError(f"selector {selector!r} needs scorer scores; sample {missing[0]} has none")
    return generated, sum(int(r["scorer_tokens"]) for r in group)


def subsample_blocks(n_samples: int, n: int) -> list[range]:
    """The disjoint blocks of ``n`` consecutive sample indices among ``n_samples`` (the last
    ``n_samples % n`` indices are left out)."""
    if n < 1 or n > n_samples:
        raise ValueError(f"need 1 <= n <= {n_samples} samples, got n={n}")
    return [range(lo, lo + n) for lo in range(0, n_samples - n + 1, n)]


def selector_at_n(selector: str, group: Sequence[dict[str, Any]], n: int) -> dict[str, float]:
    """``selector`` on ``n`` of a problem's samples (ordered by ``sample_idx``), averaged over the
    disjoint blocks of :func:`subsample_blocks`: accuracy (0..1), generated and scorer tokens."""
    ordered = sorted(group, key=lambda r: r["sample_idx"])
    blocks = [[ordered[i] for i in b] for b in subsample_blocks(len(ordered), n)]
    costs = [selection_cost(selector, b) for b in blocks]
    return {
        "accuracy": sum(select(selector, b) for b in blocks) / len(blocks),
        "generated_tokens": sum(c[0] for c in costs) / len(blocks),
        "scorer_tokens": sum(c[1] for c in costs) / len(blocks),
        "blocks": len(blocks),
    }


def available_selectors(groups: Sequence[Sequence[dict[str, Any]]]) -> list[str]:
    """The selectors the records support: scorer-based ones only when every sample has a score."""
    scored = all(
        r.get("reward_score") is not None and r.get("scorer_tokens") is not None for g in groups for r in g
    )
    return [s for s in SELECTORS if s not in SCORER_SELECTORS or scored]
