"""The data mix: SFT targets never exceed their budget, both controls give the right prompts and
completions, ratios hold, builds are deterministic and splits disjoint, validation names the field,
and data/prepare.py writes a folder the trainers load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from thinkbudget.data import (
    RESULT,
    RL_COLUMNS,
    SFT_COLUMNS,
    DataMixArguments,
    RowPlan,
    answer_text,
    build_rl_dataset,
    build_sft_dataset,
    fit_trace,
    load_prepared,
    target_lines_of,
    trace_is_sound,
)
from thinkbudget.grading import is_correct
from thinkbudget.parsing import get_parser, parse_completion
from thinkbudget.protocol import EMPTY_THINK_BLOCK, NO_THINK_FLAG, THINK_FLAG, parse_budget_from_prompt
from thinkbudget.tasks import load_problems
from thinkbudget.traces import check_lines, is_number, same_number, thinking_between_tags

ROOT = Path(__file__).resolve().parents[1]
MIX_TASKS = ["chain", "multiply", "nested", "gsm8k", "rg/leg_counting"]


@pytest.fixture(scope="module")
def mix_args() -> DataMixArguments:
    return DataMixArguments(tasks=MIX_TASKS, num_train_problems=60, num_test_problems=20, flag_ratio=0.4)


@pytest.fixture(scope="module")
def sft_train(mix_args, tokenizer):
    return build_sft_dataset(mix_args, tokenizer, "train")


@pytest.fixture(scope="module")
def problems_by_id(mix_args):
    return {p.id: p for t in MIX_TASKS for s in ("train", "test") for p in load_problems(t, s, n=60, seed=0)}


def test_sft_columns(sft_train, mix_args):
    assert tuple(sft_train.column_names) == SFT_COLUMNS
    assert len(sft_train) == 60 * len(MIX_TASKS)
    assert Counter(sft_train["task"]) == dict.fromkeys(MIX_TASKS, 60)


def test_sft_rows_never_over_budget(sft_train, tokenizer, problems_by_id):
    """Every budgeted target fits, its count is the parser's, and the trace is the finest sound one that
    fits (else the result alone)."""
    parser = get_parser(tokenizer)
    budgeted = 0
    for row in sft_train:
        parsed = parse_completion(row["completion"], tokenizer)
        assert parsed.thinking_tokens == row["thinking_tokens"]
        # The same count when the target is parsed as the token ids training feeds the model.
        ids = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
        assert parse_completion(ids, tokenizer).thinking_tokens == row["thinking_tokens"]
        if row["mode"] == "no_think":
            assert parsed.thinking_tokens == 0 and row["budget"] is None
            continue
        assert parsed.think_closed
        if row["budget"] is None:  # the finest sound trace (GSM8K's prose may end on another number)
            problem = problems_by_id[row["id"]]
            sound = [g for g, t in problem.traces.items() if trace_is_sound(t, problem.answer)]
            assert row["granularity"] == (sound[0] if sound else RESULT)
            continue
        budgeted += 1
        assert parsed.within_budget(row["budget"]), row
        # A budgeted target always carries real thinking (SFT and GRPO's mode_compliance agree).
        assert row["thinking_tokens"] > 0 and row["granularity"] != "none", row
        problem = problems_by_id[row["id"]]
        thinking = thinking_between_tags(row["completion"]).strip()
        grans = list(problem.traces)
        if row["granularity"] == RESULT:  # no trace fits: the result alone
            assert thinking == f"= {problem.answer}"
            finer = grans
        else:  # a whole trace, never a cut one
            assert thinking == problem.traces[row["granularity"]]
            finer = grans[: grans.index(row["granularity"])]
        for g in finer:  # every finer sound trace would have broken the budget
            if trace_is_sound(problem.traces[g], problem.answer):
                assert parser.thinking_token_count(f"\n{problem.traces[g]}\n") > row["budget"]
    assert budgeted > 50
    assert {"full", "condensed", RESULT} <= set(sft_train["granularity"])
    assert "none" not in set(sft_train.filter(lambda r: r["budget"] is not None)["granularity"])


def test_every_think_target_is_sound(sft_train, problems_by_id):
    """Every arithmetic line of every SFT target is correct and its answer is the trace's last number."""
    think = [row for row in sft_train if row["mode"] == "think" and row["granularity"] != "none"]
    assert len(think) > 100
    for row in think:
        thinking = thinking_between_tags(row["completion"])
        check = check_lines(thinking)
        assert check.all_correct, row
        gold = problems_by_id[row["id"]].answer
        assert same_number(check.result, gold) or not is_number(gold), row


@pytest.mark.parametrize("budget", [1, 5, 16, 30, 64, 200, 10_000])
def test_fit_trace_coarser_but_complete(budget, tokenizer):
    parser = get_parser(tokenizer)
    for p in load_problems("gsm8k", "train", n=40) + load_problems("chain", "train", n=40):
        gran, trace, n = fit_trace(p, budget, tokenizer)
        sound = [g for g, t in p.traces.items() if trace_is_sound(t, p.answer)]
        if gran is None:  # not even the result fits
            assert trace is None and n == 0
            assert parser.thinking_token_count(f"\n= {p.answer}\n") > budget
        elif gran == RESULT:
            assert trace == f"= {p.answer}" and 0 < n <= budget
            assert all(parser.thinking_token_count(f"\n{p.traces[g]}\n") > budget for g in sound)
        else:  # the finest sound trace that fits
            assert trace == p.traces[gran] and 0 < n <= budget and gran in sound
            for g in sound[: sound.index(gran)]:
                assert parser.thinking_token_count(f"\n{p.traces[g]}\n") > budget


def test_fit_trace_literal(tokenizer):
    """A chain of 12 steps: full under a large budget, coarser under a smaller one, the result alone
    under the smallest; never the first steps of a trace."""
    from thinkbudget.tasks import Problem, chain_granularity, chain_lines

    ops = [("+", 8), ("-", 6), ("+", 3), ("-", 2)] * 3
    traces = {chain_granularity(g): "\n".join(chain_lines(47, ops, g)) for g in (1, 2, 3, 4, 6)}
    p = Problem("c", "chain", "Compute ...", "56", traces)
    assert fit_trace(p, None, tokenizer)[0] == "full"
    # thinking tokens of the traces, finest first: 99, 69, 59, 54, 49; the result "= 56": 6
    grans = [fit_trace(p, b, tokenizer)[0] for b in (200, 80, 64, 56, 50, 40, 8)]
    assert grans == ["full", "2-per-line", "3-per-line", "4-per-line", "6-per-line", RESULT, RESULT]
    assert fit_trace(p, 8, tokenizer)[1] == "= 56"
    assert fit_trace(p, 2, tokenizer) == (None, None, 0)  # not even "= 56" fits 2 tokens
    wrong = Problem("w", "chain", "Compute ...", "56", {"full": "47 + 8 = 54\n+ 2 = 56"})
    assert fit_trace(wrong, None, tokenizer) == (RESULT, "= 56", 6)  # an unsound trace is never a target


def test_fit_trace_granularities_and_margin_literal(tokenizer):
    """The proof's rule: a budgeted target writes only the listed granularities (here the terse trace),
    within (1 - margin) of its budget, else the result alone, which only has to fit the budget; free
    thinking keeps the finest trace whatever is listed."""
    from thinkbudget.tasks import TERSE, Problem, chain_granularity, chain_lines

    ops = [("+", 8), ("-", 6), ("+", 3), ("-", 2)] * 3
    traces = {chain_granularity(g): "\n".join(chain_lines(47, ops, g)) for g in (1, 2, 3, 4, 6)}
    traces = {"full": traces.pop("full"), TERSE: "\n".join(chain_lines(47, ops, 1, terse=True)), **traces}
    p = Problem("c", "chain", "Compute ...", "56", traces)
    # thinking tokens: full 99, terse 75, 2-per-line 69, ...; the result "= 56": 6
    assert [fit_trace(p, b, tokenizer)[::2] for b in (99, 98, 75, 74)] == [
        ("full", 99),
        (TERSE, 75),
        (TERSE, 75),
        ("2-per-line", 69),
    ]
    only_terse = {"granularities": (TERSE,)}
    assert fit_trace(p, None, tokenizer, **only_terse)[0] == "full"
    assert [fit_trace(p, b, tokenizer, **only_terse)[0] for b in (200, 75, 74, 6, 5)] == [
        TERSE,
        TERSE,
        RESULT,
        RESULT,
        None,
    ]
    margin = {"granularities": (TERSE,), "margin": 0.15}  # the terse trace needs 75 / 0.85 = 88.2 tokens
    assert [fit_trace(p, b, tokenizer, **margin)[0] for b in (89, 88, 7, 6)] == [
        TERSE,
        RESULT,
        RESULT,
        RESULT,
    ]
    assert fit_trace(p, 5, tokenizer, **margin) == (None, None, 0)
    assert fit_trace(p, 99, tokenizer, margin=0.15)[0] == TERSE  # full (99) needs 117 tokens at that margin


def test_target_rule_reads_args_and_manifests():
    """The report reads a run's rule from its manifest the way the data stage read its arguments."""
    from thinkbudget.data import target_rule

    args = DataMixArguments(granularities=["terse", "condensed"], budget_margin=0.15, plan_line=True)
    rule = {"plan": True, "granularities": ("terse", "condensed"), "margin": 0.15}
    assert target_rule(args) == rule
    assert (
        target_rule({"plan_line": True, "granularities": ["terse", "condensed"], "budget_margin": 0.15})
        == rule
    )
    # A manifest written before these fields existed: the old rule.
    assert target_rule({"plan_line": False}) == {"plan": False, "granularities": (), "margin": 0.0}
    # Per-task margins: each task its own; no task (or one the mix lacks) reads budget_margin.
    mix = {"tasks": ["chain", "gsm8k"], "budget_margin": 0.15, "task_budget_margins": [0.1, 0.35]}
    assert [target_rule(mix, t)["margin"] for t in ("chain", "gsm8k", "other", None)] == [
        0.1,
        0.35,
        0.15,
        0.15,
    ]
    args = DataMixArguments(tasks=["chain", "gsm8k"], budget_margin=0.15, task_budget_margins=[0.15, 0.35])
    assert (target_rule(args, "chain")["margin"], target_rule(args, "gsm8k")["margin"]) == (0.15, 0.35)


def test_task_budget_margins_shape_each_tasks_targets(tokenizer):
    """A task's own margin decides its budgeted targets, in the SFT rows and the RL rows' target shape; the
    other task's rows are those of budget_margin alone."""
    from thinkbudget.data import build_rl_dataset, build_sft_dataset

    base = dict(tasks=["chain", "gsm8k"], task_train_problems=[12, 12], num_test_problems=0, budgets=[32])
    base |= dict(think_budget_ratio=1.0, think_free_ratio=0.0, no_think_ratio=0.0, rows_per_problem=1)
    base |= dict(granularities=["terse", "condensed"], budget_margin=0.0)
    same = build_sft_dataset(DataMixArguments(**base), tokenizer)
    wide = build_sft_dataset(DataMixArguments(**base, task_budget_margins=[0.0, 0.45]), tokenizer)
    for a, b in zip(same, wide):
        assert a["id"] == b["id"]
        if a["task"] == "chain":
            assert a["completion"] == b["completion"]
        elif a["granularity"] != "result":
            assert a["thinking_tokens"] <= 32  # fits the budget without a margin
        if b["task"] == "gsm8k" and b["granularity"] != "result":
            assert b["thinking_tokens"] <= 0.55 * 32  # and within (1 - 0.45) of it with one
    gsm = [(a["granularity"], b["granularity"]) for a, b in zip(same, wide) if a["task"] == "gsm8k"]
    assert any(x != "result" and y == "result" for x, y in gsm), gsm  # the wider margin made some coarser
    rl_same = build_rl_dataset(DataMixArguments(**base), tokenizer)
    rl_wide = build_rl_dataset(DataMixArguments(**base, task_budget_margins=[0.0, 0.45]), tokenizer)
    lines = [(a["task"], a["target_lines"], b["target_lines"]) for a, b in zip(rl_same, rl_wide)]
    assert all(x == y for t, x, y in lines if t == "chain")
    assert any(x > 0 and y == 0 for t, x, y in lines if t == "gsm8k"), lines


def test_target_lines_literal(tokenizer):
    """An RL row carries the shape of the trace SFT would train for it: the same 12-step chain has
    12 arithmetic lines in full, 6 / 4 / 3 / 2 at 2 / 3 / 4 / 6 operations a line, none as the result
    alone; thinking-off rows and budgets not even the result fits have no target."""
    from thinkbudget.tasks import Problem, chain_granularity, chain_lines

    ops = [("+", 8), ("-", 6), ("+", 3), ("-", 2)] * 3
    traces = {chain_granularity(g): "\n".join(chain_lines(47, ops, g)) for g in (1, 2, 3, 4, 6)}
    p = Problem("c", "chain", "Compute ...", "56", traces, meta={"steps": 12})
    # thinking tokens, finest first: 99, 69, 59, 54, 49; the result: 6 (test_fit_trace_literal)
    lines = [
        target_lines_of(p, RowPlan("think", "kwargs", b), tokenizer)
        for b in (None, 99, 80, 59, 54, 49, 48, 6)
    ]
    assert lines == [12, 12, 6, 4, 3, 2, 0, 0]
    assert target_lines_of(p, RowPlan("think", "flag", 64), tokenizer) == 4  # the control does not matter
    assert target_lines_of(p, RowPlan("think", "kwargs", 5), tokenizer) is None  # "= 56" needs 6 tokens
    assert target_lines_of(p, RowPlan("no_think", "kwargs", None), tokenizer) is None
    assert target_lines_of(p, RowPlan("no_think", "flag", None), tokenizer) is None
    assert target_lines_of(replace(p, traces={}), RowPlan("think", "kwargs", None), tokenizer) is None
    # With the plan line its 4 tokens count against the budget: 99 no longer holds the full trace.
    assert target_lines_of(p, RowPlan("think", "kwargs", 99), tokenizer, plan=True) == 6


def test_plan_line_literal(tokenizer):
    """Under ``plan_line`` a chain's every target opens with its size, counted in the budget, so the
    granularity that fits shifts by the plan's tokens; a problem that does not know its size (GSM8K)
    keeps its traces as they are."""
    from thinkbudget.data import plan_text
    from thinkbudget.tasks import Problem, chain_granularity, chain_lines

    ops = [("+", 8), ("-", 6), ("+", 3), ("-", 2)] * 3
    traces = {chain_granularity(g): "\n".join(chain_lines(47, ops, g)) for g in (1, 2, 3, 4, 6)}
    p = Problem("c", "chain", "Compute ...", "56", traces, meta={"steps": 12})
    assert plan_text(p) == "12 steps"
    gran, trace, n = fit_trace(p, None, tokenizer, plan=True)
    assert gran == "full" and trace == "12 steps\n" + traces["full"] and n == 99 + 4  # '1' '2' ' steps' '\n'
    # thinking tokens with the plan, finest first: 103, 73, 63, 58, 53; the result "12 steps\n= 56": 10
    grans = [fit_trace(p, b, tokenizer, plan=True)[0] for b in (200, 103, 102, 64, 63, 58, 53, 52, 10)]
    assert (
        grans
        == ["full", "full", "2-per-line", "3-per-line", "3-per-line", "4-per-line", "6-per-line"]
        + [RESULT] * 2
    )
    assert fit_trace(p, 10, tokenizer, plan=True)[1:] == ("12 steps\n= 56", 10)
    assert fit_trace(p, 9, tokenizer, plan=True) == (None, None, 0)  # the plan is part of the smallest trace
    for b in (None, 200, 64, 10):  # without the option, nothing changes
        assert "steps" not in (fit_trace(p, b, tokenizer)[1] or "")
    for trace in (fit_trace(p, b, tokenizer, plan=True)[1] for b in (None, 64, 10)):
        assert trace_is_sound(trace, "56") and check_lines(trace).result == "56"
    gsm = load_problems("gsm8k", "train", n=3)[0]
    assert plan_text(gsm) is None
    assert fit_trace(gsm, 64, tokenizer, plan=True) == fit_trace(gsm, 64, tokenizer)
    for bad in (12.0, True, "12", None):  # only a whole number of steps makes a plan
        assert plan_text(replace(p, meta={"steps": bad})) is None


def test_plan_line_rows(tokenizer):
    """Every chain think row of a ``plan_line`` mix opens with its problem's size, stays within its
    budget and is sound; GSM8K rows carry no plan; a non-boolean value is refused by name."""
    args = DataMixArguments(
        tasks=["chain", "gsm8k"], num_train_problems=40, num_test_problems=10, plan_line=True
    )
    rows = build_sft_dataset(args, tokenizer, "train")
    problems = {p.id: p for t in ("chain", "gsm8k") for p in load_problems(t, "train", n=40, seed=0)}
    parser = get_parser(tokenizer)
    think = [r for r in rows if r["mode"] == "think"]
    assert {r["task"] for r in think} == {"chain", "gsm8k"}
    for row in think:
        thinking = thinking_between_tags(row["completion"]).strip()
        problem = problems[row["id"]]
        first = thinking.splitlines()[0]
        if row["task"] == "chain":
            assert first == f"{problem.meta['steps']} steps", row
        else:
            assert "steps" not in first, row
        assert trace_is_sound(thinking, problem.answer), row
        if row["budget"] is not None:
            assert parser.thinking_token_count(f"\n{thinking}\n") == row["thinking_tokens"] <= row["budget"]
    with pytest.raises(ValueError, match="plan_line: must be true or false"):
        DataMixArguments(tasks=["chain"], plan_line="yes")


def test_budgeted_rows_move_up_rather_than_go_empty(tokenizer):
    """A problem whose result alone does not fit the drawn budget takes the next budget that fits."""
    from thinkbudget.data import RowPlan, fit_budgeted_row
    from thinkbudget.tasks import Problem

    long_step = "1234567 * 7654321 = 9449772114007"  # one step, ~30 tokens (one per digit)
    p = Problem(id="x", task="multiply", question="q", answer="9449772114007", traces={"full": long_step})
    plan, (gran, trace, n) = fit_budgeted_row(p, RowPlan("think", "kwargs", 8), [8, 24, 64, 128], tokenizer)
    assert plan.budget == 24 and gran == RESULT and trace == "= 9449772114007" and 8 < n <= 24
    plan, (gran, trace, n) = fit_budgeted_row(p, RowPlan("think", "kwargs", 64), [8, 16, 64], tokenizer)
    assert plan.budget == 64 and gran == "full" and trace == long_step
    plan, (gran, _, n) = fit_budgeted_row(p, RowPlan("think", "kwargs", 4), [4, 8], tokenizer)
    assert plan.budget is None and gran == "full" and n > 16  # no budget fits: free thinking


def test_sft_controls_and_completions(sft_train, problems_by_id):
    seen = Counter()
    for row in sft_train:
        problem = problems_by_id[row["id"]]
        prompt, completion = row["prompt"], row["completion"]
        answer = answer_text(problem.answer)
        seen[(row["mode"], row["control"])] += 1
        assert completion.endswith(answer)
        assert parse_budget_from_prompt(prompt) == row["budget"]
        if row["control"] == "flag":
            flag = THINK_FLAG if row["mode"] == "think" else NO_THINK_FLAG
            assert prompt.count(f" {flag}<|im_end|>") == 1
        else:  # ("</think>" contains "/think", so look for the flags as the user turn appends them)
            assert f" {THINK_FLAG}<|im_end|>" not in prompt and f" {NO_THINK_FLAG}<|im_end|>" not in prompt
        if row["mode"] == "no_think" and row["control"] == "kwargs":
            assert prompt.endswith("<|im_start|>assistant\n" + EMPTY_THINK_BLOCK) and completion == answer
        elif row["mode"] == "no_think":
            assert prompt.endswith("<|im_start|>assistant\n") and completion == EMPTY_THINK_BLOCK + answer
        else:
            assert prompt.endswith("<|im_start|>assistant\n") and completion.startswith("<think>")
        if not problem.traces:  # reasoning-gym: nothing to think with
            assert row["mode"] == "no_think"
    assert set(seen) == {("think", "kwargs"), ("think", "flag"), ("no_think", "kwargs"), ("no_think", "flag")}


def test_sft_answers_score_correct(sft_train, tokenizer, problems_by_id):
    for row in sft_train:
        p = problems_by_id[row["id"]]
        answer = parse_completion(row["completion"], tokenizer).answer
        assert is_correct(answer, p.answer, task=p.task, meta=p.meta), row


def test_ratios_roughly_respected(tokenizer):
    args = DataMixArguments(
        tasks=["chain", "multiply", "nested"],
        num_train_problems=400,
        budgets=[16, 64],
        budget_weights=[3, 1],
        think_budget_ratio=0.6,
        think_free_ratio=0.1,
        no_think_ratio=0.3,
        flag_ratio=0.2,
    )
    ds = build_rl_dataset(args, tokenizer, "train")
    n = len(ds)
    budgets = Counter(ds["budget"])
    assert abs((budgets[16] + budgets[64]) / n - 0.6) < 0.05
    assert abs(budgets[None] / n - 0.4) < 0.05
    assert abs(Counter(ds["mode"])["no_think"] / n - 0.3) < 0.05
    assert abs(Counter(ds["control"])["flag"] / n - 0.2) < 0.05
    assert abs(budgets[16] / (budgets[16] + budgets[64]) - 0.75) < 0.06


def test_rl_budget_weights_change_only_the_rl_rows_budgets(tokenizer):
    base = dict(
        tasks=["chain"],
        num_train_problems=300,
        budgets=[16, 64],
        think_budget_ratio=0.6,
        think_free_ratio=0.2,
        no_think_ratio=0.2,
    )
    uniform = DataMixArguments(**base)
    skewed = DataMixArguments(**base, rl_budget_weights=[1, 0])
    rl_u, rl_s = (build_rl_dataset(a, tokenizer, "train") for a in (uniform, skewed))
    # Every RL row keeps its problem, mode and control; a budgeted row states 16 instead of 64.
    assert rl_u["id"] == rl_s["id"] and rl_u["mode"] == rl_s["mode"] and rl_u["control"] == rl_s["control"]
    assert Counter(rl_u["budget"])[64] > 50 and Counter(rl_s["budget"])[64] == 0
    assert [b is None for b in rl_u["budget"]] == [b is None for b in rl_s["budget"]]
    # The SFT rows are the same rows.
    sft_u, sft_s = (build_sft_dataset(a, tokenizer, "train") for a in (uniform, skewed))
    assert sft_u["completion"] == sft_s["completion"] and sft_u["prompt"] == sft_s["prompt"]
    # A weight of 2:1 draws about two thirds of the budgeted RL rows at the first budget.
    two_to_one = build_rl_dataset(DataMixArguments(**base, rl_budget_weights=[2, 1]), tokenizer, "train")
    b = Counter(two_to_one["budget"])
    assert abs(b[16] / (b[16] + b[64]) - 2 / 3) < 0.08


def test_extreme_ratios(tokenizer):
    args = DataMixArguments(
        tasks=["chain"],
        num_train_problems=30,
        think_budget_ratio=0,
        think_free_ratio=0,
        no_think_ratio=1,
        flag_ratio=1,
    )
    ds = build_sft_dataset(args, tokenizer, "train")
    assert set(ds["mode"]) == {"no_think"} and set(ds["control"]) == {"flag"}
    assert all(c.startswith(EMPTY_THINK_BLOCK) for c in ds["completion"])


def test_rl_dataset(mix_args, tokenizer):
    ds = build_rl_dataset(mix_args, tokenizer, "test")
    problems = {p.id: p for t in MIX_TASKS for p in load_problems(t, "test", n=20, seed=mix_args.mix_seed)}
    assert tuple(ds.column_names) == RL_COLUMNS and len(ds) == 20 * len(MIX_TASKS)
    for row in ds:
        meta = json.loads(row["meta"])
        assert row["question"] in row["prompt"]
        assert parse_budget_from_prompt(row["prompt"]) == row["budget"]
        assert is_correct(answer_text(row["answer"]), row["answer"], task=row["task"], meta=meta)
        if row["mode"] == "no_think" and row["control"] == "kwargs":
            assert row["prompt"].endswith(EMPTY_THINK_BLOCK)
        # target_lines: the lines of the trace an SFT row of the same type trains (fit_trace's rule).
        problem = problems[row["id"]]
        if row["mode"] == "no_think" or not problem.traces:
            assert row["target_lines"] is None, row
        else:
            _, trace, _ = fit_trace(problem, row["budget"], tokenizer)
            assert row["target_lines"] == (check_lines(trace).lines if trace else None), row
    assert None in ds["target_lines"] and any(ds["target_lines"])  # both kinds of rows were checked
    # In RL, problems without traces still get thinking rows (nothing needs a trace).
    rg_modes = {r["mode"] for r in ds if r["task"].startswith("rg/")}
    assert "think" in rg_modes


def test_deterministic_and_disjoint(mix_args, tokenizer):
    small = replace(mix_args, num_train_problems=15, num_test_problems=10)
    a = build_rl_dataset(small, tokenizer, "train")
    assert a.to_list() == build_rl_dataset(small, tokenizer, "train").to_list()
    assert a.to_list() != build_rl_dataset(replace(small, mix_seed=1), tokenizer, "train").to_list()
    test = build_rl_dataset(small, tokenizer, "test")
    for task in MIX_TASKS:
        train_q = {r["question"] for r in a if r["task"] == task}
        test_q = {r["question"] for r in test if r["task"] == task}
        assert train_q and test_q and not train_q & test_q, task
    sft = build_sft_dataset(small, tokenizer, "train")
    assert sft.to_list() == build_sft_dataset(small, tokenizer, "train").to_list()
    # The same problem gets the same row type in SFT and RL.
    rl_plan = {r["id"]: (r["mode"], r["budget"], r["control"]) for r in a}
    for r in sft:
        if not r["task"].startswith("rg/"):
            assert rl_plan[r["id"]] == (r["mode"], r["budget"], r["control"])


def test_task_train_problems(tokenizer):
    """One training count per task; the test split keeps num_test_problems for every task."""
    args = DataMixArguments(tasks=["chain", "gsm8k"], task_train_problems=[7, 3], num_test_problems=2)
    assert Counter(build_rl_dataset(args, tokenizer, "train")["task"]) == {"chain": 7, "gsm8k": 3}
    assert Counter(build_rl_dataset(args, tokenizer, "test")["task"]) == {"chain": 2, "gsm8k": 2}


def test_rows_per_problem(tokenizer):
    """Each training problem gives rows_per_problem SFT rows of different types (mode and budget), the
    first one the row of the one-row mix; RL and test splits keep one row per problem."""
    one = DataMixArguments(tasks=["chain", "gsm8k"], num_train_problems=40, num_test_problems=5)
    three = replace(one, rows_per_problem=3)
    single = build_sft_dataset(one, tokenizer, "train")
    multi = build_sft_dataset(three, tokenizer, "train")
    assert len(single) == 80 and len(multi) == 240
    by_id: dict[str, list[tuple]] = {}
    for r in multi:
        by_id.setdefault(r["id"], []).append((r["mode"], r["budget"], r["control"], r["completion"]))
    assert len(by_id) == 80 and all(len(v) == 3 for v in by_id.values())
    for rows in by_id.values():
        assert len({(mode, budget) for mode, budget, _, _ in rows}) == 3
    for r in single:  # the first row of a problem is its one-row-mix row
        assert by_id[r["id"]][0] == (r["mode"], r["budget"], r["control"], r["completion"])
    kinds = {mode if budget is None else budget for v in by_id.values() for mode, budget, _, _ in v}
    assert len(kinds) >= 4  # off, free and budgets all occur
    assert len(build_sft_dataset(three, tokenizer, "test")) == 10
    assert len(build_rl_dataset(three, tokenizer, "train")) == 80
    rl_prompts = build_rl_dataset(one, tokenizer, "train")["prompt"]
    assert build_rl_dataset(three, tokenizer, "train")["prompt"] == rl_prompts


def test_system_prompt(tokenizer):
    args = DataMixArguments(tasks=["chain"], num_train_problems=5, system_prompt="Be brief. /no_think")
    ds = build_rl_dataset(args, tokenizer, "train")
    assert all(p.startswith("<|im_start|>system\nBe brief. /no_think") for p in ds["prompt"])


# -- validation ---------------------------------------------------------------------------------
BAD_ARGS = [
    ({"tasks": []}, "tasks"),
    ({"tasks": ["chain", "chian"]}, "tasks: unknown task 'chian'.*valid tasks: chain"),
    ({"tasks": ["rg/nope"]}, "tasks: .*rg/<name> for any of"),
    ({"tasks": ["jsonl:/no/such/file.jsonl"]}, "tasks: .*/no/such/file.jsonl"),
    ({"tasks": ["chain", "chain"]}, "tasks: duplicate"),
    (
        {"tasks": ["chain", "gsm8k"], "task_train_problems": [10]},
        "task_train_problems: has 1 counts for 2 tasks",
    ),
    ({"tasks": ["chain"], "task_train_problems": [-1]}, "task_train_problems: counts must be non-negative"),
    ({"budgets": [32, -1]}, "budgets"),
    ({"budgets": [32, 0]}, "budgets"),
    ({"budgets": [32, 1.5]}, "budgets"),
    ({"budgets": [32, True]}, "budgets"),
    ({"budgets": []}, "budgets"),
    ({"budget_weights": [1, 2]}, "budget_weights: has 2 weights for 4 budgets"),
    ({"budget_weights": [1, 2, -1, 1]}, "budget_weights"),
    ({"budget_weights": [0, 0, 0, 0]}, "budget_weights"),
    ({"rl_budget_weights": [1, 2]}, r"rl_budget_weights: has 2 weights for 4 budgets \[32, 64, 128, 256\]"),
    ({"rl_budget_weights": [1, 2, -1, 1]}, "rl_budget_weights: must be non-negative"),
    (
        {"rl_budget_weights": [0, 0, 0, 0]},
        "rl_budget_weights: must be non-negative numbers with a positive sum",
    ),
    ({"think_budget_ratio": 1.5, "no_think_ratio": 0.0, "think_free_ratio": 0.0}, "think_budget_ratio"),
    ({"no_think_ratio": -0.1}, "no_think_ratio"),
    ({"flag_ratio": 2}, "flag_ratio"),
    ({"flag_ratio": float("nan")}, "flag_ratio"),
    ({"think_free_ratio": 0.3}, "must sum to 1"),
    ({"num_train_problems": -1}, "num_train_problems"),
    ({"num_test_problems": 2.5}, "num_test_problems"),
    ({"rows_per_problem": 0}, "rows_per_problem: must be a whole number from 1 to 6"),
    ({"rows_per_problem": 7}, "rows_per_problem: .*off, free, 32, 64, 128, 256"),
    ({"rows_per_problem": 2.0}, "rows_per_problem"),
    (
        {"granularities": ["terse", "coarse"]},
        "granularities: unknown granularity 'coarse'; valid: full, terse",
    ),
    ({"budget_margin": 0.5}, r"budget_margin: must be a fraction in \[0, 0.5\)"),
    ({"budget_margin": -0.1}, "budget_margin"),
    ({"budget_margin": "0.1"}, "budget_margin"),
    (
        {"task_budget_margins": [0.1, 0.2]},
        r"task_budget_margins: has 2 margins for 4 tasks \(chain, multiply",
    ),
    (
        {"task_budget_margins": [0.1, 0.5, 0.1, "x"]},
        r"task_budget_margins: every margin must be a fraction in \[0, 0.5\)",
    ),
    (
        {"rows_per_problem": 3, "think_budget_ratio": 0, "think_free_ratio": 0.5, "no_think_ratio": 0.5},
        "rows_per_problem: must be a whole number from 1 to 2 .*off, free",
    ),
]


@pytest.mark.parametrize("kwargs,message", BAD_ARGS)
def test_validation_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataMixArguments(**kwargs)
    args = DataMixArguments()
    for k, v in kwargs.items():
        setattr(args, k, v)
    with pytest.raises(ValueError, match=message):
        args.validate()


def test_valid_edge_cases():
    DataMixArguments(budgets=[], think_budget_ratio=0, think_free_ratio=0.5, no_think_ratio=0.5)
    DataMixArguments(think_budget_ratio=0.1 + 0.2, think_free_ratio=0.2, no_think_ratio=0.5)  # float sums
    assert DataMixArguments(mix_seed=4).seed == 4


def test_parse_config_lists(tmp_path):
    from trl import TrlParser

    from thinkbudget.run_folders import parse_config

    cfg = tmp_path / "mix.yaml"
    cfg.write_text("tasks: [chain, gsm8k]\nbudgets: [8, 16]\nbudget_weights: [1, 3]\nmix_seed: 2\n")
    (args,) = parse_config([DataMixArguments], ["--config", str(cfg), "--budgets", "4", "8"])
    assert (args.tasks, args.budgets, args.budget_weights, args.mix_seed) == (
        ["chain", "gsm8k"],
        [4, 8],
        [1.0, 3.0],
        2,
    )
    # Help texts state units, and the mix parses next to TRL's training config (no duplicate --seed).
    help_text = TrlParser([DataMixArguments]).format_help()
    assert "(tokens)" in help_text and "(count" in help_text
    from trl import SFTConfig

    TrlParser([DataMixArguments, SFTConfig])


# -- data/prepare.py ----------------------------------------------------------------------------
def test_prepare_end_to_end(tmp_path, tokenizer):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = tmp_path / "smoke"
    cmd = [sys.executable, str(ROOT / "data/prepare.py"), "--config", str(ROOT / "configs/data/smoke.yaml")]
    proc = subprocess.run(
        [*cmd, "--output_dir", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for kind in ("sft", "rl"):
        for split in ("train", "test"):
            assert (out / kind / split / "dataset_info.json").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["data"]["tasks"] == ["chain", "multiply", "nested", "gsm8k", "rg/leg_counting"]
    # How coarse the reasoning gets under each budget: shares of each granularity sum to 1.
    shares = manifest["datasets"]["sft/train"]["granularity_share_by_task_budget"]
    assert shares and all(abs(sum(v.values()) - 1) < 0.01 for v in shares.values())
    checks = manifest["datasets"]["sft/train"]["target_checks"]
    assert checks["think_rows"] > 0 and checks["lines_correct"] == checks["arithmetic_lines"] > 0
    assert checks["answers_follow_trace"] == checks["numeric_answers"]
    assert manifest["datasets"]["sft/train"]["rows"] == 40 and manifest["commit"]
    assert manifest["datasets"]["rl/test"]["by_task"]["rg/leg_counting"] == 4
    preview = [json.loads(line) for line in (out / "preview.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in preview} == {"sft", "rl"}

    # A second run (in process) gives identical datasets; load_prepared reads the folder back.
    sys.path.insert(0, str(ROOT / "data"))
    import prepare

    cfg = prepare.PrepareArguments(model_name_or_path="tiny-llama", output_dir=str(tmp_path / "again"))
    smoke = DataMixArguments(**{k: v for k, v in manifest["config"]["data"].items()})
    prepare.main(cfg, smoke)
    for kind, build in (("sft", build_sft_dataset), ("rl", build_rl_dataset)):
        for split in ("train", "test"):
            first = load_prepared(str(out), kind, split).to_list()
            assert first == load_prepared(str(tmp_path / "again"), kind, split).to_list()
            assert first == build(smoke, tokenizer, split).to_list()  # built fresh

    # It refuses to overwrite a prepared folder unless asked.
    proc = subprocess.run(
        [*cmd, "--output_dir", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "overwrite_output_dir" in proc.stderr


def test_load_prepared_errors(tmp_path, smoke_data):
    with pytest.raises(ValueError, match="kind"):
        load_prepared(smoke_data, "dpo")
    with pytest.raises(ValueError, match="split"):
        load_prepared(smoke_data, "sft", "validation")
    with pytest.raises(ValueError, match=r"sft/train does not exist; prepare it:\n  python data/prepare.py"):
        load_prepared(str(tmp_path), "sft", "train")
    with pytest.raises(ValueError, match="dataset_path: required"):
        load_prepared("", "sft")
    rows = load_prepared(smoke_data, "rl", "train")
    rows.remove_columns(["budget"]).save_to_disk(str(tmp_path / "rl" / "train"))
    with pytest.raises(ValueError, match=r"lacks columns \['budget'\]; rebuild it"):
        load_prepared(str(tmp_path), "rl", "train")


def test_dataset_path_is_required_and_says_how_to_prepare_it(tmp_path, monkeypatch):
    from thinkbudget.data import DatasetArguments

    with pytest.raises(ValueError, match="dataset_path: required.*\n  python data/prepare.py --config"):
        DatasetArguments()
    with pytest.raises(ValueError, match="not a folder; prepare it first"):
        DatasetArguments(dataset_path=str(tmp_path / "missing"))
    assert DatasetArguments(dataset_path=str(tmp_path)).dataset_path == str(tmp_path)
    assert DatasetArguments(dataset_path="someone/thinkbudget-mix")  # a hub name: checked when it loads
    # The smoke recipes' folder names its own data recipe (from the repository root, where they run).
    monkeypatch.chdir(ROOT)
    if (ROOT / "data/prepared/smoke").is_dir():
        pytest.skip("data/prepared/smoke is prepared in this checkout")
    with pytest.raises(
        ValueError, match=r"prepare it first:\n  python data/prepare.py --config configs/data/smoke.yaml$"
    ):
        DatasetArguments(dataset_path="data/prepared/smoke")


def test_a_hub_dataset_is_loaded_by_name_config_and_split(monkeypatch, smoke_data):
    """A Hugging Face dataset name loads config ``sft``/``rl`` and the split through datasets.load_dataset
    (stubbed here: nothing downloads); it must carry the protocol's columns."""
    import datasets

    calls = []

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        return load_prepared(smoke_data, config, split)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert len(load_prepared("someone/thinkbudget-mix", "rl", "test")) > 0
    assert calls == [("someone/thinkbudget-mix", "rl", "test")]


def test_an_unloadable_hub_name_also_gives_the_prepare_command(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(
        ValueError, match=r"neither a prepared folder nor a loadable.*\n  python data/prepare.py"
    ):
        load_prepared("prepared/smoke", "sft")
