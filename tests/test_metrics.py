"""Evaluation metrics on hand-made samples with known answers (thinkbudget/evaluation.py)."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest
from _records import sample_record as _synthetic

from thinkbudget import evaluation as ev
from thinkbudget.protocol import EMPTY_THINK_BLOCK, THINK_OPEN
from thinkbudget.tasks import Problem


# ------------------------------------------------------------------------------------------------
# Budgets, methods, conditions
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, expected",
    [
        ("off,32,64,none", ["off", 32, 64, "none"]),
        (["off", "32", "32"], ["off", 32]),
        (["OFF", "None", "8"], ["off", "none", 8]),
        ([False, 16, "none"], ["off", 16, "none"]),  # YAML 1.1 reads `off` as false
        (["off 4"], None),
        ("0", None),
        ("-3", None),
        ("abc", None),
        ("1.5", None),
        ("", None),
    ],
)
def test_parse_budgets(spec, expected):
    if expected is None:
        with pytest.raises(ValueError, match="budget"):
            ev.parse_budgets(spec)
    else:
        assert ev.parse_budgets(spec) == expected


def test_plan_conditions_and_errors():
    conds = ev.plan_conditions(["chain"], ["off", 8, 16, "none"], list(ev.METHODS))
    labels = [(c.method, c.budget_label) for c in conds]
    assert labels == [
        ("no_think", "off"),
        ("no_think_flag", "off"),
        ("budget_prompt", "8"),
        ("budget_prompt", "16"),
        ("think", "none"),
        ("think_flag", "none"),
        ("budget_forcing", "8"),
        ("budget_forcing", "16"),
        ("auto", "none"),
        ("auto_flag", "none"),
        ("auto_budget", "8"),
        ("auto_budget", "16"),
    ]
    assert {c.mode for c in conds if c.method.startswith("no_think")} == {"no_think"}
    assert {c.mode for c in conds if c.method.startswith("auto")} == {"auto"}
    # The auto methods are opt-in: the default evaluation is what every thinkbudget checkpoint answers.
    assert set(ev.METHODS) - set(ev.DEFAULT_METHODS) == set(ev.AUTO_METHODS)
    with pytest.raises(ValueError, match="budget_forcing.*integer budget"):
        ev.plan_conditions(["chain"], ["off", "none"], ["budget_forcing"])
    with pytest.raises(ValueError, match="used by none"):
        ev.plan_conditions(["chain"], ["off", 8], ["no_think"])
    with pytest.raises(ValueError, match="valid methods"):
        ev.parse_methods("think,guess")
    with pytest.raises(ValueError, match="auto_budget.*integer budget"):
        ev.plan_conditions(["chain"], ["none"], ["auto", "auto_budget"])


def _auto_record(pid, full, thinking, correct):
    return {
        "problem_id": pid,
        "full_trace_tokens": full,
        "thinking_tokens": thinking,
        "correct": correct,
        "total_tokens": thinking + 10,
    }


def test_difficulty_quartiles_literal_cases():
    # Eight problems, two per quarter by full-trace length (ties broken by id); one sample each.
    recs = [
        _auto_record("a", 5, 0, True),
        _auto_record("b", 5, 0, False),
        _auto_record("c", 20, 0, True),
        _auto_record("d", 30, 12, True),
        _auto_record("e", 60, 40, True),
        _auto_record("f", 70, 0, False),
        _auto_record("g", 150, 90, True),
        _auto_record("h", 140, 80, False),
    ]
    q = ev.difficulty_quartiles(recs)
    assert [x["n"] for x in q] == [2, 2, 2, 2]
    assert [x["full_trace_tokens"] for x in q] == [[5, 5], [20, 30], [60, 70], [140, 150]]
    assert [x["think_rate"] for x in q] == [0.0, 0.5, 0.5, 1.0]
    assert [x["accuracy"] for x in q] == [0.5, 1.0, 0.5, 0.5]
    assert q[3]["mean_total_tokens"] == 95.0
    # Two samples of one problem stay in one quarter; fewer than four problems or no reference: None.
    two = recs + [_auto_record("h", 140, 0, True)]
    assert [x["n"] for x in ev.difficulty_quartiles(two)] == [2, 2, 2, 2]
    assert ev.difficulty_quartiles(recs[:3]) is None
    assert ev.difficulty_quartiles([*recs[:7], _auto_record("z", None, 0, True)]) is None


# ------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------
def _brute_pass_at_k(n, c, k):
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize(
    "n, c, k, expected", [(5, 0, 1, 0.0), (5, 5, 3, 1.0), (5, 1, 1, 0.2), (5, 1, 2, 0.4), (4, 2, 4, 1.0)]
)
def test_pass_at_k_table(n, c, k, expected):
    assert ev.pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_matches_enumeration():
    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(1, 8)
        c, k = rng.randint(0, n), rng.randint(1, n)
        assert ev.pass_at_k(n, c, k) == pytest.approx(_brute_pass_at_k(n, c, k))
    with pytest.raises(ValueError):
        ev.pass_at_k(2, 1, 3)


def test_bootstrap_ci():
    assert ev.bootstrap_ci([]) == (None, None)
    assert ev.bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    assert ev.bootstrap_ci([0.0] * 10) == (0.0, 0.0)
    values = [1.0] * 30 + [0.0] * 70
    lo, hi = ev.bootstrap_ci(values, seed=0)
    assert lo < 0.3 < hi and 0.15 < lo and hi < 0.45
    assert ev.bootstrap_ci(values, seed=0) == (lo, hi)  # deterministic for a seed
    lo_big, hi_big = ev.bootstrap_ci(values * 10, seed=0)
    assert hi_big - lo_big < hi - lo  # more data, narrower interval


def test_majority_vote_and_best_of_n():
    assert ev.majority_vote(["18", "18", "7"], [True, True, False]) is True
    assert ev.majority_vote(["7", "18", "7"], [False, True, False]) is False
    assert ev.majority_vote(["1 000", "1000", "5"], [True, True, False]) is True  # spaces/commas ignored
    assert ev.majority_vote([None, None, "3"], [False, False, True]) is True  # no answer never wins
    assert ev.majority_vote(["3", "4"], [False, True]) is False  # tie: first seen
    assert ev.majority_vote([None, None], [False, False]) is False
    assert ev.best_of_n([-1.0, -0.2, -3.0], [False, True, False]) is True
    assert ev.best_of_n([None, -5.0], [True, False]) is False
    assert ev.best_of_n([], []) is False
    assert ev.pass_at_k_values(1) == [1]
    assert ev.pass_at_k_values(8) == [1, 2, 4, 8]
    assert ev.pass_at_k_values(6) == [1, 2, 4, 6]


# ------------------------------------------------------------------------------------------------
# Hacking checks
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, rate",
    [("", 0.0), ("a b c", 0.0), ("a b c d", 0.0), ("a b c d a b c d", 0.2), ("x " * 40, 1 - 1 / 37)],
)
def test_repeated_ngram_rate(text, rate):
    assert ev.repeated_ngram_rate(text) == pytest.approx(rate)


def test_filler_and_step_lines():
    assert ev.filler_share("... ~~~ ok !!") == pytest.approx(0.75)
    assert ev.filler_share("= (11 - 72) - (12 * 3) = -61") == 0.0  # arithmetic is not filler
    assert ev.filler_share("- - = * ( ) ... ...") == pytest.approx(0.25)
    assert ev.filler_share("") == 0.0
    assert ev.step_lines("2+3 = 5\n5*4 = 20\nso \\boxed{x=20}") == 2
    assert ev.step_lines("The answer is \\boxed{20}.") == 0


def test_hack_checks_fuzz():
    rng = random.Random(1)
    alphabet = "ab =.\n<>/{}\\think"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        assert 0.0 <= ev.repeated_ngram_rate(text) <= 1.0
        assert 0.0 <= ev.filler_share(text) <= 1.0
        assert ev.step_lines(text) >= 0


# ------------------------------------------------------------------------------------------------
# Records from real completions (real tokenizer, real parser, real scorer)
# ------------------------------------------------------------------------------------------------
PROBLEM = Problem("p1", "chain", "Compute 2 + 2.", "4")


def _record(tokenizer, completion, method="think", budget=None, prefill_think=False, **kw):
    cond = ev.Condition("chain", method, budget)
    prompt = ev.build_prompt(tokenizer, PROBLEM.question, cond, prefill_think=prefill_think)
    ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    return ev.make_record(
        tokenizer,
        condition=cond,
        problem=PROBLEM,
        sample_idx=0,
        prompt=prompt,
        token_ids=ids,
        finish_reason=kw.pop("finish_reason", "stop"),
        **kw,
    )


def test_prompts_per_method(tokenizer):
    no_think = ev.build_prompt(tokenizer, "Q?", ev.Condition("t", "no_think", None))
    assert no_think.prefill == EMPTY_THINK_BLOCK and no_think.text.endswith(EMPTY_THINK_BLOCK)
    assert no_think.ids[-len(no_think.prefill_ids) :] == no_think.prefill_ids
    flag = ev.build_prompt(tokenizer, "Q?", ev.Condition("t", "no_think_flag", None))
    assert "/no_think" in flag.text and flag.prefill == "" and not flag.text.endswith(EMPTY_THINK_BLOCK)
    budget = ev.build_prompt(tokenizer, "Q?", ev.Condition("t", "budget_prompt", 48))
    assert "Think for at most 48 tokens." in budget.text and budget.force_budget is None
    forcing = ev.build_prompt(tokenizer, "Q?", ev.Condition("t", "budget_forcing", 48))
    assert "Think for at most" not in forcing.text and forcing.force_budget == 48
    think = ev.build_prompt(tokenizer, "Q?", ev.Condition("t", "think", None), prefill_think=True)
    assert think.text.endswith(THINK_OPEN) and think.ids[-1] == tokenizer.convert_tokens_to_ids(THINK_OPEN)


def test_record_counts_and_correctness(tokenizer):
    text = "<think>\n2 + 2 = 4\n</think>\n\nThe answer is \\boxed{4}.<|im_end|>"
    rec = _record(tokenizer, text, budget=None)
    assert rec["correct"] and rec["final_answer"] == "4"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    between = ids.index(tokenizer.convert_tokens_to_ids("</think>")) - 1  # tokens strictly between the tags
    assert rec["thinking_tokens"] == between and rec["generated_tokens"] == len(ids)
    assert rec["finish_reason"] == "stop" and not rec["truncated"]
    assert rec["answer_tokens"] > 0 and rec["total_tokens"] == rec["thinking_tokens"] + rec["answer_tokens"]
    assert rec["within_budget"] is None and not any(rec["flags"].values())
    wrong = _record(tokenizer, "<think>\nhm\n</think>\n\n\\boxed{5}")
    assert not wrong["correct"]
    # Reasoning in the thinking section never counts as the answer.
    assert not _record(tokenizer, "<think>\n\\boxed{4}\n</think>\n\nno idea")["correct"]


def test_record_no_think_prefill_reads_as_no_thinking(tokenizer):
    rec = _record(tokenizer, "\\boxed{4}<|im_end|>", method="no_think")
    assert rec["thinking_tokens"] == 0 and rec["think_closed"] and rec["correct"]
    assert not rec["flags"]["thinking_in_no_think"]
    # A second think block after the pre-filled one is thinking in no-think mode.
    rec = _record(tokenizer, "<think>\nlet me think\n</think>\n\n\\boxed{4}", method="no_think")
    assert rec["flags"]["thinking_in_no_think"] and rec["extra_think_tags"]
    # With the flag only, the model must write the empty block itself; thinking counts.
    rec = _record(tokenizer, "<think>\nlet me think\n</think>\n\n\\boxed{4}", method="no_think_flag")
    assert rec["thinking_tokens"] > 0 and rec["flags"]["thinking_in_no_think"]


def test_record_hacking_flags(tokenizer):
    moved = "<think>\nok\n</think>\n\n2+2 = 4\n4*1 = 4\n4-0 = 4\n\\boxed{4}"
    assert _record(tokenizer, moved)["flags"]["reasoning_after_think"]
    long_answer = "<think>\nok\n</think>\n\n" + "word " * 80 + "\\boxed{4}"
    assert _record(tokenizer, long_answer, answer_cap=64)["flags"]["reasoning_after_think"]
    assert not _record(tokenizer, long_answer, answer_cap=500)["flags"]["reasoning_after_think"]
    padded = "<think>\n" + "and so on " * 20 + "\n</think>\n\n\\boxed{4}"
    assert _record(tokenizer, padded, method="budget_prompt", budget=64)["flags"]["padding"]
    dots = "<think>\n" + "hmm ... ... ... " * 8 + "\n</think>\n\n\\boxed{4}"
    assert _record(tokenizer, dots, method="budget_prompt", budget=64)["flags"]["padding"]
    cut = _record(tokenizer, "<think>\nstill thinking", finish_reason="length")
    assert cut["flags"]["unclosed_think"] and cut["truncated"] and cut["answer_tokens"] == 0


def test_aggregate_known_values():
    recs = [
        _synthetic("budget_prompt", 100, "a", 0, True, 80),
        _synthetic("budget_prompt", 100, "b", 0, False, 150),
        _synthetic("budget_prompt", 100, "c", 0, True, 100),
        _synthetic("budget_prompt", 100, "d", 0, True, 50),
        _synthetic("no_think", None, "a", 0, True, 0),
        _synthetic("no_think", None, "b", 0, False, 12),
    ]
    conds = [ev.Condition("chain", "budget_prompt", 100), ev.Condition("chain", "no_think", None)]
    budget_row, off_row = ev.aggregate(recs, conds)
    assert budget_row["n"] == 4 and budget_row["accuracy"] == pytest.approx(0.75)
    lo, hi = budget_row["accuracy_ci"]
    assert 0.0 <= lo <= 0.75 <= hi <= 1.0
    assert budget_row["within_budget_rate"] == pytest.approx(0.75)
    assert budget_row["relative_length_error"] == pytest.approx((0.2 + 0.5 + 0.0 + 0.5) / 4)
    assert budget_row["mean_thinking_tokens"] == pytest.approx(95.0)
    assert budget_row["median_thinking_tokens"] == pytest.approx(90.0)
    assert budget_row["mean_total_tokens"] == pytest.approx(105.0)
    assert budget_row["no_think_compliance"] is None and budget_row["thinking_in_no_think_rate"] is None
    assert off_row["no_think_compliance"] == pytest.approx(0.5)
    assert off_row["thinking_in_no_think_rate"] == pytest.approx(0.5)
    assert off_row["within_budget_rate"] is None and off_row["relative_length_error"] is None
    assert "pass_at_k" not in budget_row
    empty = ev.aggregate([], [ev.Condition("chain", "think", None)])[0]
    assert empty["n"] == 0 and empty["accuracy"] is None and empty["accuracy_ci"] == [None, None]


def test_aggregate_parallel_metrics():
    # Problem a: 1 of 4 correct, majority wrong, best log-prob on the correct one.
    # Problem b: 3 of 4 correct, majority right, best log-prob on the wrong one.
    recs = [
        _synthetic("think", None, "a", 0, False, 10, answer="5", logprob=-2.0),
        _synthetic("think", None, "a", 1, False, 10, answer="5", logprob=-3.0),
        _synthetic("think", None, "a", 2, True, 10, answer="4", logprob=-0.5),
        _synthetic("think", None, "a", 3, False, 10, answer="6", logprob=-1.0),
        _synthetic("think", None, "b", 0, True, 20, answer="4", logprob=-2.0),
        _synthetic("think", None, "b", 1, True, 20, answer="4", logprob=-2.0),
        _synthetic("think", None, "b", 2, False, 20, answer="9", logprob=-0.1),
        _synthetic("think", None, "b", 3, True, 20, answer="4", logprob=-2.0),
    ]
    (row,) = ev.aggregate(recs, [ev.Condition("chain", "think", None)], samples=4)
    assert row["accuracy"] == pytest.approx(0.5)
    assert row["pass_at_k"]["1"] == pytest.approx(0.5)
    assert row["pass_at_k"]["2"] == pytest.approx((ev.pass_at_k(4, 1, 2) + ev.pass_at_k(4, 3, 2)) / 2)
    assert row["pass_at_k"]["4"] == pytest.approx(1.0)
    assert row["majority_accuracy"] == pytest.approx(0.5)
    assert row["best_of_n_accuracy"] == pytest.approx(0.5)
    assert row["mean_tokens_per_problem"] == pytest.approx((4 * 20 + 4 * 30) / 2)
    assert math.isclose(row["mean_thinking_tokens_per_problem"], (40 + 80) / 2)


# ------------------------------------------------------------------------------------------------
# samples.jsonl
# ------------------------------------------------------------------------------------------------
def test_load_records_drops_cut_and_repeated_lines(tmp_path):
    path = tmp_path / "samples.jsonl"
    a, b = _synthetic("think", None, "a", 0, True, 1), _synthetic("think", None, "b", 0, True, 1)
    ev.append_records(path, [a, b, a])
    with open(path, "a") as f:
        f.write(json.dumps(b)[:25])  # a kill in the middle of a line
    records = ev.load_records(path)
    assert list(records) == [a["key"], b["key"]]
    assert path.read_text().endswith("\n") and len(path.read_text().splitlines()) == 2
    ev.append_records(path, [_synthetic("think", None, "c", 0, True, 1)])
    assert len(ev.load_records(path)) == 3
    assert ev.load_records(tmp_path / "missing.jsonl") == {}


def test_validate_results_names_missing_keys():
    ok = {
        "model": "m",
        "commit": "c",
        "device": "d",
        "backend": "hf",
        "config": {},
        "rows": [],
        "throughput": {"generated_tokens": 0, "seconds": 0.0, "tokens_per_second": None},
    }
    ev.validate_results(ok)
    with pytest.raises(ValueError, match="'backend'"):
        ev.validate_results({k: v for k, v in ok.items() if k != "backend"})
    with pytest.raises(ValueError, match=r"rows\[0\] is missing 'mode'"):
        ev.validate_results({**ok, "rows": [{"task": "t"}]})


@pytest.mark.parametrize("task", ["chain", "multiply", "nested", "gsm8k"])
def test_padding_check_never_flags_the_tasks_own_training_traces(task, tokenizer):
    """Calibration: the traces SFT teaches (every granularity, and the first steps of each) are not junk."""
    from thinkbudget.data import fit_trace
    from thinkbudget.parsing import parse_completion
    from thinkbudget.tasks import load_problems

    flagged = []
    for p in load_problems(task, "train", n=150):
        traces = list(p.traces.values())
        traces += [t for b in (32, 64) if (t := fit_trace(p, b, tokenizer)[1])]
        for trace in traces:
            parsed = parse_completion(f"<think>\n{trace}\n</think>\n\n\\boxed{{{p.answer}}}", tokenizer)
            if ev.hack_flags(parsed, "think", answer_cap=64)["padding"]:
                flagged.append(trace)
    assert not flagged, flagged[:3]


def _rec(pid, method, budget, correct, within=None, task="chain"):
    return {
        "task": task,
        "method": method,
        "budget_label": budget,
        "problem_id": pid,
        "correct": correct,
        "within_budget": within,
    }


def test_paired_difference_literal_cases():
    a = [
        _rec("p1", "budget_prompt", "32", True, True),
        _rec("p2", "budget_prompt", "32", False, True),
        _rec("p3", "budget_prompt", "32", True, False),
    ]
    b = [
        _rec("p1", "budget_forcing", "32", False, True),
        _rec("p2", "budget_forcing", "32", False, False),
        _rec("p4", "budget_forcing", "32", True, True),
    ]
    d = ev.paired_difference(a, b, "chain", ("budget_prompt", "budget_forcing"), "32", "correct")
    assert d["n"] == 2 and d["difference"] == pytest.approx(0.5)  # p1: 1-0, p2: 0-0; p3, p4 unpaired
    lo, hi = d["ci"]
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0
    d = ev.paired_difference(a, b, "chain", ("budget_prompt", "budget_forcing"), "32", "within_budget")
    assert d["difference"] == pytest.approx(0.5)  # p1: 1-1, p2: 1-0
    assert ev.paired_difference(a, b, "gsm8k", "budget_prompt", "32", "correct") is None
    # think/none against no_think/off of the same model
    c = [_rec("p1", "think", "none", True), _rec("p1", "no_think", "off", False)]
    d = ev.paired_difference(c, c, "chain", ("think", "no_think"), ("none", "off"), "correct")
    assert d == {"difference": 1.0, "ci": [1.0, 1.0], "n": 1, "metric": "correct"}


def test_think_flag_prompt(tokenizer):
    flag = ev.build_prompt(tokenizer, "Q?", ev.Condition("t", "think_flag", None))
    assert " /think<|im_end|>" in flag.text and "Think for at most" not in flag.text and flag.prefill == ""
    assert ev.Condition("t", "think_flag", None).budget_label == "none"
    assert ev.Condition("t", "think_flag", None).mode == "think"


def test_record_trace_fields(tokenizer):
    """Step correctness and answer-follows-trace of one sample (thinkbudget.traces on its thinking)."""
    rec = _record(tokenizer, "<think>\n47 + 8 = 55\n- 6 = 48\n</think>\n\nThe answer is \\boxed{48}.")
    assert (rec["trace_lines"], rec["trace_lines_correct"], rec["trace_result"]) == (2, 1, "48")
    assert rec["answer_follows_trace"] is True
    rec = _record(tokenizer, "<think>\n47 + 8 = 55\n- 6 = 49\n</think>\n\nThe answer is \\boxed{55}.")
    assert (rec["trace_lines"], rec["trace_lines_correct"], rec["answer_follows_trace"]) == (2, 2, False)
    rec = _record(tokenizer, "\\boxed{4}<|im_end|>", method="no_think")
    assert rec["trace_lines"] == 0 and rec["trace_result"] is None and rec["answer_follows_trace"] is None
    assert rec["full_trace_tokens"] is None  # PROBLEM has no reference trace
    with_trace = Problem("p2", "chain", "Compute 2 + 2.", "4", {"full": "2 + 2 = 4"})
    cond = ev.Condition("chain", "think", None)
    prompt = ev.build_prompt(tokenizer, with_trace.question, cond)
    ids = tokenizer("<think>\n2 + 2 = 4\n</think>\n\n\\boxed{4}", add_special_tokens=False)["input_ids"]
    rec = ev.make_record(
        tokenizer,
        condition=cond,
        problem=with_trace,
        sample_idx=0,
        prompt=prompt,
        token_ids=ids,
        finish_reason="stop",
    )
    assert rec["full_trace_tokens"] == rec["thinking_tokens"] > 0


def test_aggregate_trace_and_budget_metrics():
    """step_correctness pools lines; budget_effect is stated minus free thinking under the same budget;
    budget use is measured on the problems whose reference trace needs more than the budget."""
    extra = {"think_closed": True}
    recs = [
        # free thinking: a (20 tokens, under 32), b (90), c (40): 1 of 3 within 32
        _synthetic(
            "think",
            None,
            "a",
            0,
            True,
            20,
            full_trace_tokens=20,
            trace_lines=2,
            trace_lines_correct=2,
            **extra,
        ),
        _synthetic(
            "think",
            None,
            "b",
            0,
            True,
            90,
            full_trace_tokens=90,
            trace_lines=8,
            trace_lines_correct=6,
            **extra,
        ),
        _synthetic(
            "think",
            None,
            "c",
            0,
            False,
            40,
            full_trace_tokens=40,
            trace_lines=4,
            trace_lines_correct=4,
            **extra,
        ),
        # budget 32: all within; b and c need more than 32 tokens
        _synthetic(
            "budget_prompt", 32, "a", 0, True, 20, full_trace_tokens=20, answer_follows_trace=True, **extra
        ),
        _synthetic(
            "budget_prompt", 32, "b", 0, False, 8, full_trace_tokens=90, answer_follows_trace=False, **extra
        ),
        _synthetic(
            "budget_prompt", 32, "c", 0, True, 16, full_trace_tokens=40, answer_follows_trace=True, **extra
        ),
    ]
    conds = [ev.Condition("chain", "think", None), ev.Condition("chain", "budget_prompt", 32)]
    free, stated = ev.aggregate(recs, conds)
    assert free["trace_lines"] == 14 and free["step_correctness"] == pytest.approx(12 / 14)
    assert free["answer_follows_trace_rate"] is None and "budget_effect" not in free
    assert stated["within_budget_rate"] == 1.0 and stated["free_within_budget_rate"] == pytest.approx(1 / 3)
    assert stated["budget_effect"] == pytest.approx(2 / 3)
    assert stated["n_need_more"] == 2 and stated["mean_thinking_tokens_need_more"] == pytest.approx(12.0)
    assert stated["budget_use_need_more"] == pytest.approx(12 / 32)
    assert stated["answer_follows_trace_rate"] == pytest.approx(2 / 3) and stated["step_correctness"] is None


@pytest.mark.parametrize(
    "k, n, lo, hi",
    [(0, 0, None, None), (50, 100, 0.4038, 0.5962), (200, 200, 0.9812, 1.0), (0, 10, 0.0, 0.2775)],
)
def test_wilson_interval(k, n, lo, hi):
    got = ev.wilson_interval(k, n)
    if lo is None:
        assert got == (None, None)
    else:
        assert got == (pytest.approx(lo, abs=1e-4), pytest.approx(hi, abs=1e-4))


def test_ratio_ci_and_paired_bootstrap():
    ratio, lo, hi = ev.ratio_ci([9, 9, 10], [10, 10, 10])
    assert ratio == pytest.approx(28 / 30) and lo <= ratio <= hi <= 1.0
    assert ev.ratio_ci([1], [0]) == (None, None, None) and ev.ratio_ci([], []) == (None, None, None)
    d = ev.paired_bootstrap({"a": 1.0, "b": 1.0, "c": 0.0}, {"a": 0.0, "b": 1.0, "x": 1.0})
    assert d["n"] == 2 and d["difference"] == pytest.approx(0.5) and d["ci"][0] <= 0.5 <= d["ci"][1]
    assert ev.paired_bootstrap({"a": 1.0}, {"b": 1.0}) is None
