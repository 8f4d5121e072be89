"""The ceiling of a line checker on these answers: majority vote among the answers whose lines all check.

    python results/frontier-cpu-smollm2-135m/experiment-process-scorer/checked_vote.py EVAL_DIR OUT.json

A perfect process scorer of arithmetic lines would know which answers hold a wrong line. This reads that
from thinkbudget.traces.line_verdicts (no gold: only the answer's own lines, re-evaluated) and votes among
the n = 8 answers of a problem whose lines are all right (all 8 when none is), in the frontier's disjoint
blocks of samples. Writes, per condition, the accuracy of majority@8 and of the checked vote@8 and their
paired difference over problems with its 95 % bootstrap interval. A reference for what checking the
arithmetic can buy on this checkpoint, not a selector of the frontier.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from thinkbudget.evaluation import load_records, paired_bootstrap
from thinkbudget.process_scorer import line_steps
from thinkbudget.scorer import record_input
from thinkbudget.selection import majority_vote, subsample_blocks

N = 8


def lines_check(record: dict) -> bool:
    """Whether every arithmetic line of the answer's thinking is right (the process scorer's lines,
    thinkbudget.process_scorer.line_steps; True for an answer without one)."""
    return all(ok for _, ok in line_steps(record_input(record)[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("eval_dir")
    parser.add_argument("out")
    args = parser.parse_args()
    groups: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in load_records(Path(args.eval_dir) / "samples.jsonl").values():
        groups[r["budget_label"]][r["problem_id"]].append(r)
    out = {"eval_dir": args.eval_dir, "n": N, "conditions": {}}
    for budget, problems in sorted(groups.items()):
        majority, checked = {}, {}
        for pid, group in problems.items():
            ordered = sorted(group, key=lambda r: r["sample_idx"])
            blocks = [[ordered[i] for i in b] for b in subsample_blocks(len(ordered), N)]
            m = c = 0.0
            for block in blocks:
                m += majority_vote([r["final_answer"] for r in block], [r["correct"] for r in block])
                kept = [r for r in block if lines_check(r)] or block
                c += majority_vote([r["final_answer"] for r in kept], [r["correct"] for r in kept])
            majority[pid], checked[pid] = m / len(blocks), c / len(blocks)
        diff = paired_bootstrap(checked, majority)
        out["conditions"][budget] = {
            "problems": len(problems),
            "majority": sum(majority.values()) / len(majority),
            "checked_vote": sum(checked.values()) / len(checked),
            "difference": diff,
        }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
