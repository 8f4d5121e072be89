"""How well the process scorer judges single lines of held-out answers (test problems it never saw).

    python results/frontier-cpu-smollm2-135m/experiment-process-scorer/line_check.py SCORER EVAL_DIR OUT.json \
        [--budgets 64,128] [--samples 4]

For the answers at the given budgets (the first N samples of each problem), every arithmetic line and every
final answer is scored by the process scorer (log-probability of "right") and labelled by
thinkbudget.traces.line_verdicts / the answer's correctness. Writes, per kind of step, the count, the
accuracy of the verdict "right when P(right) > 1/2", and the AUC (the chance that a random right step scores
above a random wrong one, ties 1/2), plus the share of wrong answers with a wrong line whose lowest-scored
line is a wrong one.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from thinkbudget.evaluation import load_records
from thinkbudget.process_scorer import ProcessScorer, labelled_steps


def auc(right: list[float], wrong: list[float]) -> float | None:
    """Mann-Whitney: P(score of a right step > score of a wrong step), ties counted 1/2."""
    if not right or not wrong:
        return None
    ranked = sorted([(s, 1) for s in right] + [(s, 0) for s in wrong])
    rank_sum, i = 0.0, 0
    while i < len(ranked):  # average ranks over ties
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        rank_sum += sum(lab for _, lab in ranked[i:j]) * (i + j + 1) / 2
        i = j
    return (rank_sum - len(right) * (len(right) + 1) / 2) / (len(right) * len(wrong))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scorer")
    parser.add_argument("eval_dir")
    parser.add_argument("out")
    parser.add_argument("--budgets", default="64,128")
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    budgets = args.budgets.split(",")
    records = [
        r
        for r in load_records(Path(args.eval_dir) / "samples.jsonl").values()
        if r["budget_label"] in budgets and r["sample_idx"] < args.samples
    ]
    scorer = ProcessScorer(args.scorer, dtype="bfloat16", batch_size=64)
    scores: dict[str, list[float]] = {
        "line_right": [],
        "line_wrong": [],
        "answer_right": [],
        "answer_wrong": [],
    }
    caught = wrong_with_bad_line = 0
    for r, steps in zip(records, labelled_steps(scorer, records)):
        for kind, label, lp in steps:
            scores[f"{kind}_{'right' if label else 'wrong'}"].append(lp)
        lines = [(lp, label) for kind, label, lp in steps if kind == "line"]
        if not r["correct"] and any(not ok for _, ok in lines):
            wrong_with_bad_line += 1
            caught += not min(lines)[1]  # the lowest-scored line is a wrong one
    out = {
        "scorer": args.scorer,
        "eval_dir": args.eval_dir,
        "budgets": budgets,
        "samples_per_problem": args.samples,
        "answers": len(records),
        "lines": {
            "right": len(scores["line_right"]),
            "wrong": len(scores["line_wrong"]),
            "accuracy_right": sum(math.exp(s) > 0.5 for s in scores["line_right"])
            / max(len(scores["line_right"]), 1),
            "accuracy_wrong": sum(math.exp(s) <= 0.5 for s in scores["line_wrong"])
            / max(len(scores["line_wrong"]), 1),
            "auc": auc(scores["line_right"], scores["line_wrong"]),
        },
        "final_answers": {
            "right": len(scores["answer_right"]),
            "wrong": len(scores["answer_wrong"]),
            "auc": auc(scores["answer_right"], scores["answer_wrong"]),
        },
        "wrong_answers_with_a_wrong_line": wrong_with_bad_line,
        "lowest_line_is_a_wrong_one": caught / wrong_with_bad_line if wrong_with_bad_line else None,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
