"""The targets of the trained scorer and the compute frontier, each reached or not, from a frontier run's files.

    python scripts/frontier_targets.py runs/frontier-cpu --time_limit_min 60 \
        --output results/frontier-cpu-smollm2-135m/targets

The frontier run (``scripts/frontier_run.py``) runs it as its last stage (``targets/``) with the recipe's
``time_limit_min``. Reads ``eval/frontier.json`` (every point, the scorer's comparisons, its held-out
pairwise accuracy, the share of the gap to pass@8 it closes, the spend table), ``scorer/run_summary.json``
(the pairs it trained on) and ``run.json`` (the wall time of each stage). Writes ``targets.md`` and
``targets.json``.

Every verdict is computed here, with its interval (thinkbudget/targets.py): a target is reached when its
95 % interval clears the bar. Two targets carry the issue's own interval rule, stated in their names:
"best-of-8 >= majority + 3 points, its paired interval above zero" and "scorer-weighted vote >= majority"
(its paired interval's lower end at least zero).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from thinkbudget.frontier import condition_label
from thinkbudget.targets import Targets, pct, stage_record

MIN_PAIRS = 200  # held-out pairs the pairwise accuracy is measured on
PAIRWISE_BAR = 0.80
SCORER_MARGIN = 0.03  # points above majority vote, as a share
GAP_BAR = 1 / 3  # of the gap between one sample and pass@8
N = 8


def _points(d: dict[str, Any]) -> str:
    lo, hi = d["difference_ci"]
    return f"{100 * d['difference']:+.1f} pts ({100 * lo:+.1f} to {100 * hi:+.1f}), n = {d['problems']}"


def _beats_majority(d: dict[str, Any]) -> bool:
    """Best-of-N by the scorer at least SCORER_MARGIN above majority vote, its paired interval above zero."""
    return d["difference"] >= SCORER_MARGIN and d["difference_ci"][0] > 0


def _task_of(rows: list[dict[str, Any]]) -> str:
    """The one task of ``rows``, or ``all`` when they span several."""
    tasks = {d["task"] for d in rows}
    return tasks.pop() if len(tasks) == 1 else "all"


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SystemExit(f"frontier_targets.py: error: {path} does not exist (run the frontier stage first)")
    return json.loads(path.read_text())


def frontier_targets(
    frontier: dict[str, Any], seconds: dict[str, float], time_limit_min: float | None
) -> Targets:
    """Every target of the frontier, computed from ``frontier.json`` and the stage times."""
    t = Targets()
    for pw in frontier.get("scorer_pairwise", []):
        lo, hi = pw["ci"]
        value = f"{pct(pw['accuracy'])} ({pct(lo)} to {pct(hi)}), {pw['pairs']} pairs of {pw['problems']} problems"
        name = f"scorer pairwise accuracy >= {pct(PAIRWISE_BAR)} on >= {MIN_PAIRS} held-out pairs"
        if pw["pairs"] < MIN_PAIRS:
            t.note("all", name, value + f" (fewer than {MIN_PAIRS} pairs)", False, pairwise=pw)
        else:
            t.add("all", name, value, lo, PAIRWISE_BAR, point=pw["accuracy"], pairwise=pw)
    if not frontier.get("scorer_pairwise"):
        t.note("all", f"scorer pairwise accuracy >= {pct(PAIRWISE_BAR)}", "no scored answers", None)

    diffs = frontier.get("scorer_against_others", [])
    budgeted = [d for d in diffs if d["method"] == "budget_prompt"]
    best = [d for d in diffs if (d["of"], d["against"]) == ("scorer", "majority")]
    for d in best:
        t.note(
            d["task"],
            f"scorer best-of-{d['n']} >= majority@{d['n']} + 3 points, paired interval above zero, at "
            f"{condition_label(d['method'], d['budget_label'])}",
            _points(d),
            _beats_majority(d),
            comparison=d,
        )
    hits = [d for d in best if d["method"] == "budget_prompt"]
    if hits:
        won = [condition_label(d["method"], d["budget_label"]) for d in hits if _beats_majority(d)]
        t.note(
            _task_of(hits),
            "scorer best-of-8 >= majority@8 + 3 points (interval above zero) at one budget at least",
            f"at {', '.join(won)}" if won else "at no budget",
            bool(won),
        )
    votes = [d for d in budgeted if (d["of"], d["against"]) == ("scorer_majority", "majority")]
    for d in [d for d in diffs if (d["of"], d["against"]) == ("scorer_majority", "majority")]:
        t.add(
            d["task"],
            f"scorer-weighted vote >= majority vote at {condition_label(d['method'], d['budget_label'])} "
            f"(n = {d['n']}; paired interval's lower end >= 0)",
            _points(d),
            d["difference_ci"][0],
            0.0,
            point=d["difference"],
            comparison=d,
        )
    if votes:
        short = [condition_label(d["method"], d["budget_label"]) for d in votes if d["difference_ci"][0] < 0]
        t.note(
            _task_of(votes),
            "scorer-weighted vote >= majority vote at every budget",
            f"interval below zero at its lower end at {', '.join(short)}" if short else "at every budget",
            not short,
        )
    gaps = frontier.get("gap_closed", [])
    for g in gaps:
        lo, hi = g["share_ci"]
        t.add(
            g["task"],
            f"scorer best-of-{g['n']} closes >= 1/3 of the gap from one sample to pass@{g['n']} at "
            f"{condition_label(g['method'], g['budget_label'])}",
            f"{pct(g['share'])} ({pct(lo)} to {pct(hi)}): one sample {pct(g['single'])}, best-of-{g['n']} "
            f"{pct(g['selected'])}, pass@{g['n']} {pct(g['oracle'])}, n = {g['problems']}",
            lo,
            GAP_BAR,
            point=g["share"],
            gap=g,
        )
    spend = frontier.get("spend_table", [])
    decided = [r for r in spend if r["winner"] in ("samples", "budget")]
    t.note(
        "all",
        "the frontier table says, from paired intervals, whether a larger budget or more samples buys more "
        "accuracy at each spend level (>= 3 levels)",
        "; ".join(f"{r['spend']:.0f} tokens: {r['winner'] or 'one side has no point'}" for r in spend)
        + f" ({len(decided)} of {len(spend)} levels decided by the interval)",
        len([r for r in spend if r["winner"]]) >= 3,
        levels=spend,
    )
    if time_limit_min is not None:
        t.wall_time(f"frontier run within {time_limit_min:g} min (run.json)", seconds, time_limit_min)
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a frontier run folder (scripts/frontier_run.py)")
    parser.add_argument(
        "--output", help="path without suffix for .md and .json (default RUN/targets/targets)"
    )
    parser.add_argument("--time_limit_min", type=float, help="the run's time limit (minutes of stages)")
    args = parser.parse_args(argv)
    run = Path(args.run)
    frontier = _read(run / "eval" / "frontier.json")
    scorer = run / "scorer" / "run_summary.json"
    summary = json.loads(scorer.read_text()) if scorer.is_file() else {}
    trained, weight = summary.get("data", {}), summary.get("logprob_weight") or 0.0
    seconds = stage_record(run / "run.json", "seconds")
    seconds.pop("targets", None)  # this stage, still running
    t = frontier_targets(frontier, seconds, args.time_limit_min)

    path = Path(args.output) if args.output else run / "targets" / "targets"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(
        json.dumps({"targets": t.rows, "scorer_data": trained, "logprob_weight": weight}, indent=2) + "\n"
    )
    train = trained.get("train", {})
    if summary.get("stage") == "process_scorer":  # train/process_scorer.py: labelled lines, not pairs
        data_line = (
            f"The process scorer trained on {train.get('answers', '–')} answers to training problems "
            f"({train.get('slipped_copies', 0)} of them slipped copies of right answers): "
            f"{train.get('lines_right', '–')} right and {train.get('lines_wrong', '–')} wrong arithmetic lines, "
            f"{train.get('answers_right', '–')} right and {train.get('answers_wrong', '–')} wrong final answers; "
            "an answer's score is the smallest log-probability of 'right' over its lines and its final answer."
        )
    else:
        data_line = (
            f"The scorer trained on {train.get('pairs', '–')} pairs (right and wrong answers to one training "
            f"problem under one condition) from {train.get('samples', '–')} answers to "
            f"{train.get('problems', '–')} training problems ({train.get('mixed_groups', '–')} of "
            f"{train.get('groups', '–')} groups hold both)"
            + (
                f", and on {train['slip_pairs']} pairs of a right answer against a copy with one arithmetic line "
                "changed and the rest made to follow (`slip_pairs_per_right`)"
                if train.get("slip_pairs")
                else ""
            )
            + (
                f"; its score is its head's output plus {weight:.2f} x the policy's mean log-probability of the "
                "answer (the log-probability prior, its weight fit on the training pairs)."
                if weight
                else "."
            )
        )
    lines = [
        "# Trained scorer and compute frontier: targets",
        "",
        f"Run folder `{run}`. Generated by `scripts/frontier_targets.py` from `eval/frontier.json`, "
        "`scorer/run_summary.json` and `run.json`: a target is reached when its 95 % interval clears the bar "
        "(paired bootstrap over problems for differences, bootstrap over problems for the pairwise accuracy "
        "and the share of the gap).",
        "",
        data_line,
        *[
            "\n"
            f"For reference, the policy's own mean log-probability ranks the same held-out pairs at "
            f"{pct(lp['accuracy'])} ({pct(lp['ci'][0])} to {pct(lp['ci'][1])}), {lp['pairs']} pairs."
            for lp in frontier.get("logprob_pairwise", [])
        ],
        "",
        *t.table(),
    ]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {path}.md and {path}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
