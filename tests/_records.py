"""samples.jsonl records for tests: ``rec`` with only the fields that selection and the frontier read
(tests/test_selection.py, tests/test_frontier.py), ``sample_record`` a complete one (tests/test_metrics.py,
tests/test_proof_targets.py)."""

from __future__ import annotations

from thinkbudget import evaluation as ev


def rec(
    problem: str,
    idx: int,
    correct: bool,
    answer: str | None,
    thinking: int = 0,
    answer_tokens: int = 10,
    *,
    logprob: float | None = None,
    score: float | None = None,
    read: int | None = None,
    task: str = "chain",
    method: str = "budget_prompt",
    budget: str = "32",
) -> dict:
    """A samples.jsonl record with only the fields selection and the frontier read."""
    return {
        "key": f"{task}/{method}/{budget}/{problem}/{idx}",
        "task": task,
        "method": method,
        "budget_label": budget,
        "problem_id": problem,
        "sample_idx": idx,
        "correct": correct,
        "final_answer": answer,
        "thinking_tokens": thinking,
        "answer_tokens": answer_tokens,
        "total_tokens": thinking + answer_tokens,
        "mean_logprob": logprob,
        "reward_score": score,
        "scorer_tokens": read,
    }


def sample_record(method, budget, problem, idx, correct, thinking, *, answer="4", logprob=None, **extra):
    """A complete samples.jsonl record of task chain (what aggregation and the targets read); ``extra``
    overrides or adds fields."""
    label = ev.Condition("chain", method, budget).budget_label
    rec = {
        "key": ev.sample_key("chain", method, label, problem, idx),
        "task": "chain",
        "method": method,
        "mode": ev.METHOD_MODE[method],
        "budget": budget,
        "budget_label": label,
        "problem_id": problem,
        "sample_idx": idx,
        "correct": correct,
        "final_answer": answer,
        "thinking_tokens": thinking,
        "answer_tokens": 10,
        "total_tokens": thinking + 10,
        "within_budget": (thinking <= budget) if budget else None,
        "truncated": False,
        "has_boxed": True,
        "forced": False,
        "extra_think_tags": False,
        "mean_logprob": logprob,
        "repeated_ngram_rate": 0.0,
        "filler_share": 0.0,
        "flags": {
            "reasoning_after_think": False,
            "thinking_in_no_think": thinking > 0 and method == "no_think",
            "unclosed_think": False,
            "padding": False,
        },
    }
    rec.update(extra)
    return rec
