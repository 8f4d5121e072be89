"""The compute frontier: at a given token spend per problem, which budget x samples x selector wins?

From an evaluation folder whose ``samples.jsonl`` holds N samples per problem (``eval/evaluate.py
--samples N``), every point of the grid *condition* (a method and its budget) x *n* (1, 2, 4, ... <= N,
by subsampling, :func:`thinkbudget.selection.subsample_blocks`) x *selector* gets

- ``accuracy``: the share of problems where the selector's pick is correct (mean over the disjoint
  n-blocks of each problem, then over problems), with a 95 % bootstrap interval over problems;
- ``mean_tokens_per_problem``: everything the point spends per problem: n x (thinking + answer)
  tokens generated, plus the tokens the scorer reads for the scorer-based selectors
  (:func:`thinkbudget.selection.selection_cost`).

The Pareto front (:func:`mark_pareto`, per task) holds the points no other point beats: fewer or equal
tokens with at least equal accuracy. The oracle reads the gold, so it is drawn for reference and never
placed on the front. :func:`spend_table` answers the user's question at a few spend levels: the best
single-sample point (spend on a larger budget) against the best point with several samples (spend on
parallel samples), each within that many tokens per problem.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from thinkbudget.evaluation import METHODS, bootstrap_ci, fmt, paired_bootstrap, pareto_front, ratio_ci
from thinkbudget.selection import (
    REFERENCE_SELECTORS,
    SELECTOR_LABELS,
    SINGLE,
    available_selectors,
    selector_at_n,
)

DEFAULT_NS = (1, 2, 4, 8, 16)


@dataclass
class FrontierArguments:
    """``eval/frontier.py``: evaluation folders in, frontier.png / frontier.md / frontier.json out."""

    eval_dirs: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Evaluation folders (paths) with N samples per problem (eval/evaluate.py --samples N)."
        },
    )
    labels: list[str] | None = field(
        default=None, metadata={"help": "One label per folder for the overlay (default: the model names)."}
    )
    scorer: str | None = field(
        default=None,
        metadata={
            "help": "A trained scorer folder (train/scorer.py): adds best-of-N by the scorer and the "
            "scorer-weighted vote; scores are cached per scorer in each folder's scorer_scores.jsonl."
        },
    )
    output: str | None = field(
        default=None,
        metadata={"help": "Folder for the overlay across folders (required with several eval_dirs)."},
    )
    samples_grid: list[int] = field(
        default_factory=lambda: list(DEFAULT_NS),
        metadata={"help": "Numbers of samples n per problem to draw (samples; those above N are left out)."},
    )
    spend_levels: list[float] = field(
        default_factory=list,
        metadata={
            "help": "Token spends per problem (tokens) at which to compare a larger budget with more samples; "
            "empty = powers of two across the points' range."
        },
    )
    scorer_batch_size: int = field(
        default=16, metadata={"help": "Answers per scorer forward pass (answers)."}
    )
    scorer_dtype: str = field(
        default="auto",
        metadata={"help": "Scorer dtype: auto (bfloat16 on GPU, float32 on CPU) or a torch dtype."},
    )
    ci_resamples: int = field(default=1000, metadata={"help": "Bootstrap resamples for the 95% intervals."})
    seed: int = field(default=0, metadata={"help": "Seed of the bootstrap (integer)."})

    def __post_init__(self) -> None:
        if isinstance(self.eval_dirs, str):
            self.eval_dirs = [self.eval_dirs]
        if (
            any(isinstance(n, bool) or int(n) != n or n < 1 for n in self.samples_grid)
            or not self.samples_grid
        ):
            raise ValueError(f"samples_grid: must be positive numbers of samples, got {self.samples_grid}")
        if any(not (isinstance(x, int | float) and x > 0) for x in self.spend_levels):
            raise ValueError(f"spend_levels: must be positive token counts, got {self.spend_levels}")
        if self.labels is not None and self.eval_dirs and len(self.labels) != len(self.eval_dirs):
            raise ValueError(f"labels: {len(self.labels)} labels for {len(self.eval_dirs)} eval_dirs")


def condition_label(method: str, budget_label: str) -> str:
    """How a condition reads in the figure and the tables: ``off``, ``32``, ``free``, ``forced 32``,
    ``auto``, ``auto 32``."""
    return {
        "no_think": "off",
        "no_think_flag": "off (flag)",
        "think_flag": "free (flag)",
        "think": "free",
        "budget_forcing": f"forced {budget_label}",
        "auto": "auto",
        "auto_flag": "auto (flag)",
        "auto_budget": f"auto {budget_label}",
    }.get(method, str(budget_label))


def point_name(p: dict[str, Any]) -> str:
    """``32 x8 scorer``: condition, samples, selector."""
    return f"{condition_label(p['method'], p['budget_label'])} x{p['n']} {p['selector']}"


def frontier_points(
    records: Iterable[dict[str, Any]],
    *,
    ns: Sequence[int] = DEFAULT_NS,
    ci_resamples: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Every (task, condition, n, selector) point of ``records`` (see the module docstring). Only
    problems with the condition's full N samples count, so every n is measured on the same problems."""
    by_cond: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in records:
        by_cond[(r["task"], r["method"], r["budget_label"])][r["problem_id"]].append(r)
    points = []
    for (task, method, budget_label), problems in by_cond.items():
        full = max(len(g) for g in problems.values())
        groups = [problems[k] for k in sorted(problems) if len(problems[k]) == full]  # fixed problem order
        selectors = available_selectors(groups)
        for n in sorted({int(n) for n in ns if n <= full}):
            for selector in [SINGLE] if n == 1 else selectors:
                per_problem = [selector_at_n(selector, g, n) for g in groups]
                acc = [p["accuracy"] for p in per_problem]
                gen = sum(p["generated_tokens"] for p in per_problem) / len(groups)
                read = sum(p["scorer_tokens"] for p in per_problem) / len(groups)
                points.append(
                    {
                        "task": task,
                        "method": method,
                        "budget_label": budget_label,
                        "n": n,
                        "selector": selector,
                        "problems": len(groups),
                        "skipped_problems": len(problems) - len(groups),
                        "accuracy": sum(acc) / len(acc),
                        "accuracy_ci": list(bootstrap_ci(acc, resamples=ci_resamples, seed=seed)),
                        "mean_tokens_per_problem": gen + read,
                        "mean_generated_tokens_per_problem": gen,
                        "mean_scorer_tokens_per_problem": read,
                        "reference": selector in REFERENCE_SELECTORS,
                        "per_problem_accuracy": acc,  # in problem-id order: paired comparisons
                        "problem_ids": [g[0]["problem_id"] for g in groups],
                    }
                )
    return sorted(points, key=_point_order)


def _point_order(p: dict[str, Any]) -> tuple:
    budget = p["budget_label"]
    budget_key = (0, 0) if budget == "off" else ((2, 0) if budget == "none" else (1, int(budget)))
    selector_order = [SINGLE, *SELECTOR_LABELS]
    return (p["task"], METHODS.index(p["method"]), budget_key, p["n"], selector_order.index(p["selector"]))


def mark_pareto(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set ``pareto`` on every point: on its task's front of (tokens, accuracy) among the points that
    do not read the gold. Returns ``points``."""
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in points:
        p["pareto"] = False
        if not p["reference"]:
            by_task[p["task"]].append(p)
    for group in by_task.values():
        for p, on in zip(group, pareto_front([(q["mean_tokens_per_problem"], q["accuracy"]) for q in group])):
            p["pareto"] = on
    return points


def default_spend_levels(points: Sequence[dict[str, Any]]) -> list[float]:
    """Powers of two from the cheapest point's spend up to the dearest's (tokens per problem)."""
    costs = [
        p["mean_tokens_per_problem"]
        for p in points
        if not p["reference"] and p["mean_tokens_per_problem"] > 0
    ]
    if not costs:
        return []
    lo, hi = math.ceil(math.log2(min(costs))), math.floor(math.log2(max(costs)))
    return [float(2**k) for k in range(lo, hi + 1)]


def _best(points: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The most accurate point, the cheaper one on a tie."""
    return min(points, key=lambda p: (-p["accuracy"], p["mean_tokens_per_problem"]), default=None)


def by_problem(p: dict[str, Any]) -> dict[str, float]:
    """A point's accuracy per problem id (its ``problem_ids`` and ``per_problem_accuracy``)."""
    return dict(zip(p["problem_ids"], p["per_problem_accuracy"]))


def _cells(
    points: Iterable[dict[str, Any]],
) -> dict[tuple[str, str, str], dict[tuple[int, str], dict[str, Any]]]:
    """Points by (task, method, budget label), then by (n, selector)."""
    cells: dict[tuple[str, str, str], dict[tuple[int, str], dict[str, Any]]] = defaultdict(dict)
    for p in points:
        cells[(p["task"], p["method"], p["budget_label"])][(p["n"], p["selector"])] = p
    return cells


def paired_difference(
    a: dict[str, Any], b: dict[str, Any], *, ci_resamples: int = 1000, seed: int = 0
) -> dict[str, Any] | None:
    """Point ``a`` minus point ``b`` in accuracy on the problems both were measured on (their
    ``problem_ids``), with the 95 % paired bootstrap interval over problems; None when they share none."""
    return paired_bootstrap(by_problem(a), by_problem(b), ci_resamples=ci_resamples, seed=seed)


def spend_table(
    points: Sequence[dict[str, Any]], levels: Sequence[float], *, ci_resamples: int = 1000, seed: int = 0
) -> list[dict[str, Any]]:
    """Per task and spend level L (tokens per problem): the best one-sample point and the best point with
    several samples, each spending at most L, and ``difference`` (several minus single, paired over
    problems, 95 % interval). ``winner``: ``samples`` when that interval is above zero, ``budget`` when
    below, ``neither`` when it holds zero (the data cannot tell), None when one side has no point within L."""
    rows = []
    for task in sorted({p["task"] for p in points}):
        mine = [p for p in points if p["task"] == task and not p["reference"]]
        for level in levels:
            within = [p for p in mine if p["mean_tokens_per_problem"] <= level]
            single = _best(p for p in within if p["n"] == 1)
            several = _best(p for p in within if p["n"] > 1)
            winner, diff = None, None
            if single is not None and several is not None:
                diff = paired_difference(several, single, ci_resamples=ci_resamples, seed=seed)
                lo, hi = diff["ci"]
                winner = "samples" if lo > 0 else ("budget" if hi < 0 else "neither")
            rows.append(
                {
                    "task": task,
                    "spend": level,
                    "single": single,
                    "several": several,
                    "difference": diff,
                    "winner": winner,
                }
            )
    return rows


# The per-answer scores whose pairwise accuracy frontier.md reports (evaluation key -> what it is).
PAIRWISE_SCORES = (("trained scorer", "pairwise"), ("policy's mean log-probability", "logprob_pairwise"))

# The scorer's comparisons at equal samples: best-of-N by the scorer against majority vote and
# log-probability, and the scorer-weighted vote against plain majority vote.
SCORER_COMPARISONS = (("scorer", "majority"), ("scorer", "logprob"), ("scorer_majority", "majority"))


def paired_differences(
    points: Sequence[dict[str, Any]],
    *,
    comparisons: Sequence[tuple[str, str]] = SCORER_COMPARISONS,
    n: int = 8,
    ci_resamples: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per task, condition and (``of``, ``against``) selector pair: ``of`` minus ``against`` on the same
    n samples of the same problems (``n``, or the largest n below it that both have): the mean
    difference in accuracy and its 95 % paired bootstrap interval over problems."""
    rows = []
    for (task, method, budget), cell in _cells(points).items():
        for of, against in comparisons:
            ns = sorted({k[0] for k in cell if k[0] <= n and (k[0], of) in cell and (k[0], against) in cell})
            if not ns:
                continue
            d = paired_difference(
                cell[(ns[-1], of)], cell[(ns[-1], against)], ci_resamples=ci_resamples, seed=seed
            )
            rows.append(
                {
                    "task": task,
                    "method": method,
                    "budget_label": budget,
                    "n": ns[-1],
                    "of": of,
                    "against": against,
                    "difference": d["difference"],
                    "difference_ci": d["ci"],
                    "problems": d["n"],
                }
            )
    return rows


def gap_closed(
    points: Sequence[dict[str, Any]],
    *,
    selector: str = "scorer",
    n: int = 8,
    ci_resamples: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per task and condition, the share of the gap between one sample and pass@n (the oracle) that
    ``selector`` at n samples closes: sum over problems of (selector - single) / sum of (oracle - single),
    with its 95 % bootstrap interval over problems. Conditions where pass@n equals one sample are left out."""
    rows = []
    for (task, method, budget), cell in _cells(points).items():
        picked, oracle, single = cell.get((n, selector)), cell.get((n, "oracle")), cell.get((1, SINGLE))
        if picked is None or oracle is None or single is None:
            continue
        one, best, mine = by_problem(single), by_problem(oracle), by_problem(picked)
        shared = sorted(set(one) & set(best) & set(mine))
        share, lo, hi = ratio_ci(
            [mine[q] - one[q] for q in shared],
            [best[q] - one[q] for q in shared],
            resamples=ci_resamples,
            seed=seed,
        )
        if share is None:
            continue
        rows.append(
            {
                "task": task,
                "method": method,
                "budget_label": budget,
                "n": n,
                "selector": selector,
                "single": sum(one[q] for q in shared) / len(shared),
                "selected": sum(mine[q] for q in shared) / len(shared),
                "oracle": sum(best[q] for q in shared) / len(shared),
                "share": share,
                "share_ci": [lo, hi],
                "problems": len(shared),
            }
        )
    return rows


def pairwise_accuracy(
    records: Iterable[dict[str, Any]], *, score: str = "reward_score", ci_resamples: int = 1000, seed: int = 0
) -> dict[str, Any] | None:
    """How well a per-answer ``score`` (the trained scorer's ``reward_score``, or the policy's own
    ``mean_logprob``) ranks held-out answers: within every (problem, condition), every pair of a right
    and a wrong answer counts 1 when the right one scores higher, 1/2 on a tie. The rate is all wins
    over all pairs; its 95 % interval resamples problems (the pairs of one problem share answers, so
    they are not independent). None when no record has the score or no pair exists."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get(score) is not None:
            groups[(r["task"], r["problem_id"], r["method"], str(r["budget_label"]))].append(r)
    wins: dict[tuple[str, str], float] = defaultdict(float)
    pairs: dict[tuple[str, str], int] = defaultdict(int)
    by_condition: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for (task, problem, method, budget), group in groups.items():
        right = [r[score] for r in group if r["correct"]]
        wrong = [r[score] for r in group if not r["correct"]]
        won = sum(1.0 if a > b else (0.5 if a == b else 0.0) for a in right for b in wrong)
        wins[(task, problem)] += won
        pairs[(task, problem)] += len(right) * len(wrong)
        cond = by_condition[condition_label(method, budget)]
        cond[0] += won
        cond[1] += len(right) * len(wrong)
    keys = sorted(pairs)
    rate, lo, hi = ratio_ci(
        [wins[k] for k in keys], [pairs[k] for k in keys], resamples=ci_resamples, seed=seed
    )
    if rate is None:
        return None
    return {
        "score": score,
        "accuracy": rate,
        "ci": [lo, hi],
        "pairs": sum(pairs.values()),
        "problems": sum(1 for k in keys if pairs[k]),
        "by_condition": {c: {"accuracy": w / p, "pairs": p} for c, (w, p) in by_condition.items() if p},
    }


def frontier_analysis(
    points: Sequence[dict[str, Any]],
    levels: Sequence[float] | None = None,
    *,
    ci_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """Everything frontier.md and frontier.json report beyond the points, computed once: the spend table
    (at ``levels``, default :func:`default_spend_levels`), the scorer's paired comparisons and the share
    of the gap to pass@8 it closes."""
    kw = {"ci_resamples": ci_resamples, "seed": seed}
    return {
        "spend": spend_table(points, levels or default_spend_levels(points), **kw),
        "comparisons": paired_differences(points, **kw),
        "gaps": gap_closed(points, **kw),
    }


def _cell(p: dict[str, Any] | None) -> str:
    if p is None:
        return "–"
    lo, hi = p["accuracy_ci"]
    ci = f" ({fmt(lo, 'pct')}–{fmt(hi, 'pct')})" if lo is not None else ""
    return (
        f"{point_name(p)}: {fmt(p['accuracy'], 'pct')}{ci}, {fmt(p['mean_tokens_per_problem'], 'tokens')} tok"
    )


def frontier_markdown(evaluations: Sequence[dict[str, Any]]) -> str:
    """frontier.md: per evaluation (``label``, ``results`` provenance, ``points`` and their
    :func:`frontier_analysis` as ``analysis``), the spend comparison, the scorer's comparisons and every
    point, the Pareto front marked."""
    lines = [
        "# Compute frontier: accuracy against tokens spent per problem",
        "",
        "Cost of a point = n x (thinking + answer tokens) generated + tokens the scorer reads (scorer "
        "selectors only). n < N samples: mean over disjoint blocks of n samples. Accuracy with its 95% "
        "bootstrap interval over problems. ★ = on the task's Pareto front; the oracle reads the gold and is "
        "never on it.",
        "",
        "| label | model | commit | device | split | samples N | max_new_tokens | scorer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ev in evaluations:
        res, cfg = ev["results"], ev["results"].get("config", {})
        lines.append(
            f"| {ev['label']} | `{res.get('model')}` | `{str(res.get('commit'))[:12]}` | {res.get('device')} | "
            f"{cfg.get('split', 'test')} | {cfg.get('samples')} | {cfg.get('max_new_tokens')} | "
            f"{ev.get('scorer') or '–'} |"
        )
    for ev in evaluations:
        points = ev["points"]
        analysis = ev["analysis"]
        spend = analysis["spend"]
        lines += [
            "",
            f"## {ev['label']}: a larger budget or more samples?",
            "",
            "At each spend, the most accurate point with one sample (the budget buys the accuracy) against the "
            "most accurate with several; winner: `samples` or `budget` when the paired interval of their "
            "difference excludes zero, `neither` when it holds zero.",
            "",
            "| task | spend ≤ tokens/problem | best with one sample | best with several samples | "
            "several minus one (points, paired 95% CI) | winner |",
            "|---|---|---|---|---|---|",
        ]
        for row in spend:
            d = row["difference"]
            diff = (
                f"{100 * d['difference']:+.1f} ({100 * d['ci'][0]:+.1f} to {100 * d['ci'][1]:+.1f})"
                if d
                else "–"
            )
            lines.append(
                f"| {row['task']} | {row['spend']:.0f} | {_cell(row['single'])} | {_cell(row['several'])} | "
                f"{diff} | {row['winner'] or '–'} |"
            )
        ranked = [(name, ev.get(key)) for name, key in PAIRWISE_SCORES if ev.get(key)]
        if ranked:
            lines += [
                "",
                f"## {ev['label']}: ranking held-out pairs",
                "",
                "Pairwise accuracy: a right answer scored above a wrong one to the same problem under the same "
                "condition (ties 1/2), with its 95% bootstrap interval over problems.",
                "",
                "| score | pairwise accuracy (95% CI) | pairs | problems | by condition |",
                "|---|---|---|---|---|",
            ]
            for name, pw in ranked:
                lo, hi = pw["ci"]
                per = ", ".join(
                    f"{c} {fmt(v['accuracy'], 'pct')} of {v['pairs']}" for c, v in pw["by_condition"].items()
                )
                lines.append(
                    f"| {name} | {fmt(pw['accuracy'], 'pct')} ({fmt(lo, 'pct')}–{fmt(hi, 'pct')}) | {pw['pairs']} | "
                    f"{pw['problems']} | {per} |"
                )
        diffs = analysis["comparisons"]
        if diffs:
            lines += [
                "",
                f"## {ev['label']}: the trained scorer against the other selectors (same samples, paired)",
                "",
                "| task | condition | n | selector | minus | difference (points, 95% CI) | problems |",
                "|---|---|---|---|---|---|---|",
            ]
            for d in diffs:
                lo, hi = d["difference_ci"]
                lines.append(
                    f"| {d['task']} | {condition_label(d['method'], d['budget_label'])} | {d['n']} | {d['of']} | "
                    f"{d['against']} | {100 * d['difference']:+.1f} ({100 * lo:+.1f} to {100 * hi:+.1f}) | "
                    f"{d['problems']} |"
                )
        gaps = analysis["gaps"]
        if gaps:
            lines += [
                "",
                f"## {ev['label']}: how much of the gap to pass@8 best-of-8 by the scorer closes",
                "",
                "| task | condition | one sample | scorer best-of-8 | pass@8 (oracle) | share of the gap closed (95% CI) "
                "| problems |",
                "|---|---|---|---|---|---|---|",
            ]
            for g in gaps:
                lo, hi = g["share_ci"]
                lines.append(
                    f"| {g['task']} | {condition_label(g['method'], g['budget_label'])} | {fmt(g['single'], 'pct')} | "
                    f"{fmt(g['selected'], 'pct')} | {fmt(g['oracle'], 'pct')} | {fmt(g['share'], 'pct')} "
                    f"({fmt(lo, 'pct')}–{fmt(hi, 'pct')}) | {g['problems']} |"
                )
        lines += [
            "",
            f"## {ev['label']}: every point",
            "",
            "| task | condition | n | selector | accuracy (95% CI) | tokens/problem | generated | scorer read | "
            "problems | front |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in points:
            lo, hi = p["accuracy_ci"]
            lines.append(
                f"| {p['task']} | {condition_label(p['method'], p['budget_label'])} | {p['n']} | {p['selector']} | "
                f"{fmt(p['accuracy'], 'pct')} ({fmt(lo, 'pct')}–{fmt(hi, 'pct')}) | "
                f"{fmt(p['mean_tokens_per_problem'], 'tokens')} | {fmt(p['mean_generated_tokens_per_problem'], 'tokens')} | "
                f"{fmt(p['mean_scorer_tokens_per_problem'], 'tokens')} | {p['problems']} | "
                f"{'★' if p['pareto'] else ('ref' if p['reference'] else '')} |"
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# A whole frontier run (scripts/frontier_run.py): scorer data, scorer, held-out samples, frontier
# --------------------------------------------------------------------------------------------------
# The entry point each section of a frontier recipe configures (its keys are checked against it); the
# scorer's is the recipe's scorer_script, one of SCORER_SCRIPTS.
RUN_STAGE_SCRIPTS = {
    "scorer_data": "eval/evaluate.py",
    "scorer": "train/scorer.py",
    "eval": "eval/evaluate.py",
    "frontier": "eval/frontier.py",
}
# The two scorers: pairs of whole answers (thinkbudget/scorer.py) or a verdict per line (process_scorer.py).
SCORER_SCRIPTS = ("train/scorer.py", "train/process_scorer.py")


@dataclass
class FrontierRecipe:
    """One YAML in ``configs/scorer/`` for ``scripts/frontier_run.py``: the checkpoint whose answers are
    sampled, scored and selected, and per stage a recipe and overrides (``--key value`` flags), as in
    the main job's profiles. ``accelerate_args`` go to ``accelerate launch`` for the scorer's training (one process on the CPU runs
    without the launcher: :func:`thinkbudget.jobs.training_command`)."""

    description: str
    checkpoint: str
    accelerate_args: list[str] = field(default_factory=list)
    scorer_script: str = "train/scorer.py"  # the scorer stage's entry point, one of SCORER_SCRIPTS
    time_limit_min: float | None = None  # minutes for the run's stages (a target in targets.md)
    scorer_data: Any = None
    scorer: Any = None
    eval: Any = None
    frontier: Any = None
    source: str = ""


def load_frontier_recipe(path: str) -> FrontierRecipe:
    """Load and check a frontier recipe with the job-file loader (:mod:`thinkbudget.recipes`): unknown
    keys (top level, sections, or a stage's overrides or recipe keys that its entry point does not
    have) and values of the wrong type are errors naming the file and the key, before anything runs."""
    from pathlib import Path

    from thinkbudget.recipes import StageSpec, check_stage_keys, load_job_file

    sections = dict.fromkeys(RUN_STAGE_SCRIPTS, StageSpec)
    kwargs = load_job_file(path, FrontierRecipe, required=("description", "checkpoint"), sections=sections)
    scorer_script = kwargs.setdefault("scorer_script", "train/scorer.py")
    if scorer_script not in SCORER_SCRIPTS:
        raise SystemExit(
            f"{path}: scorer_script must be one of {', '.join(SCORER_SCRIPTS)}, got {scorer_script!r}"
        )
    for key, script in {**RUN_STAGE_SCRIPTS, "scorer": scorer_script}.items():
        check_stage_keys(script, f"{path} [{key}]", kwargs[key].overrides, kwargs[key].recipe)
    return FrontierRecipe(source=str(Path(path)), **kwargs)
