"""The compute frontier on literal cases: points over condition x n x selector, their accuracy and
cost, the Pareto front, and the spend comparison (a larger budget or more samples?)."""

from __future__ import annotations

import pytest
from _records import rec

from thinkbudget import frontier as fr
from thinkbudget import selection as sel


def _two_problems() -> list[dict]:
    """Budget 32: problem a right 1 of 4 (samples of 20 tokens), b right 3 of 4 (40 tokens); the
    scorer reads 10 tokens per sample. Thinking off: a and b right once each in 2 samples (5 tokens)."""
    out = []
    for i, ok in enumerate([True, False, False, False]):
        out.append(
            rec("a", i, ok, "1" if ok else str(10 + i), 10, 10, logprob=-1.0, score=float(ok), read=10)
        )
    for i, ok in enumerate([True, True, False, True]):
        out.append(rec("b", i, ok, "2" if ok else "3", 30, 10, logprob=-1.0, score=float(ok), read=10))
    for p in ("a", "b"):
        for i, ok in enumerate([False, True]):
            out.append(
                rec(p, i, ok, "1" if ok else "0", 0, 5, score=0.0, read=4, method="no_think", budget="off")
            )
    return out


def test_frontier_points_accuracy_and_cost():
    points = fr.frontier_points(_two_problems(), ns=[1, 2, 4, 8], ci_resamples=50)
    by = {(p["budget_label"], p["n"], p["selector"]): p for p in points}
    # No n above N: budget 32 has n = 1, 2, 4; thinking off n = 1, 2.
    assert sorted({(b, n) for b, n, _ in by}) == [("32", 1), ("32", 2), ("32", 4), ("off", 1), ("off", 2)]
    single = by[("32", 1, "single")]
    assert single["accuracy"] == pytest.approx((0.25 + 0.75) / 2)
    assert single["mean_tokens_per_problem"] == pytest.approx((20 + 40) / 2)  # one sample's tokens
    assert set(s for b, n, s in by if (b, n) == ("32", 1)) == {"single"}
    # n = 2: blocks [0,1], [2,3]. Majority: a: "1" vs "11" tie -> "1" right, then "12"/"13" wrong -> 0.5;
    # b: right, then "3"/"2" tie -> wrong -> 0.5.
    assert by[("32", 2, "majority")]["accuracy"] == pytest.approx(0.5)
    assert by[("32", 2, "oracle")]["accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    assert by[("32", 2, "scorer")]["accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    assert by[("32", 2, "majority")]["mean_tokens_per_problem"] == pytest.approx((2 * 20 + 2 * 40) / 2)
    assert by[("32", 2, "scorer")]["mean_tokens_per_problem"] == pytest.approx((2 * 20 + 2 * 40) / 2 + 2 * 10)
    assert by[("32", 4, "scorer")]["mean_scorer_tokens_per_problem"] == pytest.approx(40)
    assert by[("32", 4, "oracle")]["reference"] and not by[("32", 4, "scorer")]["reference"]
    assert by[("off", 2, "scorer_majority")]["mean_tokens_per_problem"] == pytest.approx(2 * 5 + 2 * 4)
    assert all(p["problems"] == 2 and p["skipped_problems"] == 0 for p in points)


def test_frontier_points_skip_incomplete_problems_and_unscored_selectors():
    records = [
        r
        for r in _two_problems()
        if r["budget_label"] == "32" and not (r["problem_id"] == "b" and r["sample_idx"] == 3)
    ]
    for r in records:
        r["reward_score"] = None
    points = fr.frontier_points(records, ns=[1, 2, 4], ci_resamples=50)
    assert all(p["problems"] == 1 and p["skipped_problems"] == 1 for p in points)
    assert {p["selector"] for p in points} == {"single", "majority", "logprob", "oracle"}


def _point(
    tokens: float,
    acc: float,
    selector: str = "majority",
    n: int = 2,
    task: str = "chain",
    per_problem: list[float] | None = None,
) -> dict:
    per_problem = per_problem if per_problem is not None else [acc] * 10
    return {
        "task": task,
        "method": "budget_prompt",
        "budget_label": "32",
        "n": n,
        "selector": selector,
        "accuracy": acc,
        "accuracy_ci": [acc, acc],
        "mean_tokens_per_problem": tokens,
        "mean_generated_tokens_per_problem": tokens,
        "mean_scorer_tokens_per_problem": 0.0,
        "problems": len(per_problem),
        "reference": selector in sel.REFERENCE_SELECTORS,
        "per_problem_accuracy": per_problem,
        "problem_ids": [f"p{i:02d}" for i in range(len(per_problem))],
    }


def test_mark_pareto_literal_and_oracle_excluded():
    points = [
        _point(100, 0.5, n=1, selector="single"),
        _point(200, 0.4),  # dominated by the first
        _point(300, 0.7),
        _point(300, 0.9, selector="oracle"),  # reads the gold: never on the front, never dominates
        _point(400, 0.7),  # same accuracy, more tokens: dominated
        _point(50, 0.9, task="gsm8k"),  # another task has its own front
    ]
    fr.mark_pareto(points)
    assert [p["pareto"] for p in points] == [True, False, True, False, False, True]


def test_spend_table_names_the_winner_from_the_paired_interval():
    def point(tokens, right, n, selector="majority"):  # right: how many of 40 problems it gets right
        return _point(tokens, right / 40, selector, n, per_problem=[1.0] * right + [0.0] * (40 - right))

    points = [
        point(100, 20, 1, "single"),
        point(200, 24, 1, "single"),
        point(200, 32, 2),  # +8 problems, none lost: the interval is above zero
        point(400, 26, 4),
        point(800, 40, 1, "single"),  # +8 over the best with several samples
        point(150, 40, 2, "oracle"),  # reads the gold: never compared
    ]
    rows = fr.spend_table(points, [100, 256, 512, 1024], ci_resamples=200)
    assert [r["winner"] for r in rows] == [None, "samples", "samples", "budget"]
    assert rows[0]["single"]["mean_tokens_per_problem"] == 100 and rows[0]["several"] is None
    assert rows[1]["several"]["accuracy"] == 0.8 and rows[1]["single"]["accuracy"] == 0.6
    assert rows[1]["difference"]["difference"] == pytest.approx(0.2) and rows[1]["difference"]["ci"][0] > 0
    assert rows[3]["single"]["accuracy"] == 1.0 and rows[3]["difference"]["ci"][1] < 0
    # One problem apart out of 40: the interval holds zero, so neither side wins.
    close = fr.spend_table([point(100, 20, 1, "single"), point(100, 21, 2)], [100], ci_resamples=200)
    assert close[0]["winner"] == "neither" and close[0]["difference"]["ci"][0] <= 0


def test_default_spend_levels_are_powers_of_two_within_range():
    assert fr.default_spend_levels(
        [_point(50, 0.1), _point(700, 0.2), _point(5000, 1.0, selector="oracle")]
    ) == [
        64.0,
        128.0,
        256.0,
        512.0,
    ]
    assert fr.default_spend_levels([]) == []


def test_frontier_markdown_marks_the_front():
    points = fr.mark_pareto(fr.frontier_points(_two_problems(), ci_resamples=50))
    results = {"model": "m", "commit": "abc", "device": "cpu", "config": {"samples": 4, "split": "test"}}
    analysis = fr.frontier_analysis(points, [16, 64], ci_resamples=50)
    md = fr.frontier_markdown(
        [{"label": "rl", "results": results, "points": points, "scorer": "s", "analysis": analysis}]
    )
    assert "a larger budget or more samples?" in md and "★" in md and "| chain | 64 |" in md
    every = md.split("every point")[1]
    assert every.count("| chain | 32 |") + every.count("| chain | off |") == len(points)
    assert "the trained scorer against the other selectors" in md and "| chain | 32 | 4 | majority |" in md


def test_frontier_arguments_checks():
    with pytest.raises(ValueError, match="samples_grid"):
        fr.FrontierArguments(eval_dirs=["x"], samples_grid=[0])
    with pytest.raises(ValueError, match="spend_levels"):
        fr.FrontierArguments(eval_dirs=["x"], spend_levels=[-1])
    with pytest.raises(ValueError, match="labels"):
        fr.FrontierArguments(eval_dirs=["x", "y"], labels=["a"])


def test_paired_differences_of_the_scorer():
    def point(n: int, selector: str, per_problem: list[float], budget: str = "32") -> dict:
        return {
            **_point(0, sum(per_problem) / 4, selector, n, per_problem=per_problem),
            "budget_label": budget,
        }

    points = [
        point(8, "scorer", [1, 1, 0, 1]),
        point(8, "majority", [1, 0, 0, 0]),
        point(8, "logprob", [1, 1, 0, 1]),
        point(8, "scorer_majority", [1, 0, 1, 0]),
        point(16, "scorer", [0, 0, 0, 0]),  # n = 16 is not the n asked for
        point(4, "scorer", [1, 0, 1, 1], "64"),  # no n = 8 here: the largest n below it
        point(4, "majority", [0, 0, 1, 1], "64"),
    ]
    rows = {
        (d["budget_label"], d["of"], d["against"]): d for d in fr.paired_differences(points, ci_resamples=200)
    }
    assert set(rows) == {
        ("32", "scorer", "majority"),
        ("32", "scorer", "logprob"),
        ("32", "scorer_majority", "majority"),
        ("64", "scorer", "majority"),
    }
    assert rows[("32", "scorer", "majority")]["difference"] == pytest.approx(0.5)
    assert rows[("32", "scorer", "majority")]["n"] == 8
    assert rows[("32", "scorer", "logprob")]["difference_ci"] == [0.0, 0.0]
    assert rows[("32", "scorer_majority", "majority")]["difference"] == pytest.approx(0.25)
    assert rows[("64", "scorer", "majority")]["n"] == 4
    assert rows[("64", "scorer", "majority")]["difference"] == pytest.approx(0.25)
    lo, hi = rows[("32", "scorer", "majority")]["difference_ci"]
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0


def test_paired_differences_pair_by_problem_id_not_position():
    a = _point(0, 0.5, "scorer", 8, per_problem=[1.0, 0.0])
    b = {**_point(0, 0.5, "majority", 8, per_problem=[1.0, 0.0]), "problem_ids": ["p01", "p00"]}
    (d,) = fr.paired_differences([a, b], comparisons=[("scorer", "majority")], ci_resamples=50)
    # p00: scorer 1, majority 0; p01: scorer 0, majority 1 -> +1 and -1, mean 0 but not a tie per problem.
    assert d["difference"] == 0.0 and d["difference_ci"][0] < 0 < d["difference_ci"][1]


def test_gap_closed_literal():
    def point(n, selector, per_problem):
        return _point(0, sum(per_problem) / len(per_problem), selector, n, per_problem=per_problem)

    points = [
        point(1, "single", [0.5, 0.25, 1.0, 0.0]),
        point(8, "oracle", [1.0, 1.0, 1.0, 0.0]),  # gap: 0.5 + 0.75 + 0 + 0 = 1.25
        point(8, "scorer", [1.0, 0.0, 1.0, 0.0]),  # closes 0.5 - 0.25 = 0.25 of it
        point(8, "majority", [1.0, 1.0, 1.0, 0.0]),
    ]
    (g,) = fr.gap_closed(points, ci_resamples=200)
    assert g["share"] == pytest.approx(0.25 / 1.25) and g["problems"] == 4
    assert g["single"] == pytest.approx(0.4375) and g["oracle"] == pytest.approx(0.75)
    (m,) = fr.gap_closed(points, selector="majority", ci_resamples=200)
    assert m["share"] == pytest.approx(1.0)
    # pass@8 no better than one sample: no gap to close, no row.
    flat = [point(1, "single", [1.0, 0.0]), point(8, "oracle", [1.0, 0.0]), point(8, "scorer", [1.0, 0.0])]
    assert fr.gap_closed(flat) == []


def test_pairwise_accuracy_literal():
    def r(problem, ok, score, budget="32", method="budget_prompt"):
        return {
            "task": "chain",
            "problem_id": problem,
            "method": method,
            "budget_label": budget,
            "correct": ok,
            "reward_score": score,
        }

    records = [
        # a @32: right 2.0 and 0.0, wrong 1.0 -> pairs (2>1 win, 0<1 loss): 1 of 2
        r("a", True, 2.0),
        r("a", True, 0.0),
        r("a", False, 1.0),
        # a @64: a tie counts 1/2
        r("a", True, 1.0, "64"),
        r("a", False, 1.0, "64"),
        # b @32: right above both wrong: 2 of 2; a right answer under another condition is not paired
        r("b", True, 3.0),
        r("b", False, 1.0),
        r("b", False, 2.0),
        r("b", True, -5.0, "off", "no_think"),
        # c: all wrong, no pair; d: unscored, left out
        r("c", False, 1.0),
        {**r("d", True, None)},
        r("d", False, 0.0),
    ]
    pw = fr.pairwise_accuracy(records, ci_resamples=200)
    assert pw["pairs"] == 5 and pw["problems"] == 2
    assert pw["accuracy"] == pytest.approx((1 + 0.5 + 2) / 5)
    assert pw["by_condition"] == {"32": {"accuracy": 0.75, "pairs": 4}, "64": {"accuracy": 0.5, "pairs": 1}}
    lo, hi = pw["ci"]
    assert lo <= pw["accuracy"] <= hi
    assert fr.pairwise_accuracy([r("a", True, None)]) is None
    # Any per-answer score: the policy's log-probability ranks b's pairs the other way round.
    by_logprob = [
        {**x, "mean_logprob": -x["reward_score"] if x["reward_score"] is not None else None} for x in records
    ]
    lp = fr.pairwise_accuracy(by_logprob, score="mean_logprob", ci_resamples=200)
    assert lp["score"] == "mean_logprob" and lp["accuracy"] == pytest.approx((1 + 0.5 + 0) / 5)


def test_points_keep_per_problem_accuracy_in_problem_order():
    points = fr.frontier_points(_two_problems(), ci_resamples=50)
    oracle = next(p for p in points if (p["budget_label"], p["n"], p["selector"]) == ("32", 2, "oracle"))
    assert oracle["per_problem_accuracy"] == [0.5, 1.0]  # problems a, b
