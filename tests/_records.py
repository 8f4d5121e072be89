"""A samples.jsonl record with only the fields that selection and the frontier read (shared by
tests/test_selection.py and tests/test_frontier.py)."""

from __future__ import annotations


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
