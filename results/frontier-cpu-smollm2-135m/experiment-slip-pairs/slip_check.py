"""Did the scorer learn to check a slip? Held-out right answers at budget 128 (the frontier run's own
evaluation of test problems) against one slipped copy each (thinkbudget.scorer.slip_pairs), ranked by
the scorer trained without slip pairs and by the one trained with them.

    python results/frontier-cpu-smollm2-135m/experiment-slip-pairs/slip_check.py \
        runs/frontier-v4 runs/frontier-v5 > results/frontier-cpu-smollm2-135m/experiment-slip-pairs/slip_check.json
"""

import json
import random
import sys

from thinkbudget.evaluation import load_records
from thinkbudget.scorer import TrainedScorer, slip_pairs

runs = sys.argv[1:]
records = load_records(f"{runs[0]}/eval/samples.jsonl").values()
right = sorted((r for r in records if r["budget_label"] == "128" and r["correct"]), key=lambda r: r["key"])
random.Random(0).shuffle(right)
pairs = slip_pairs(right[:300], 1, seed=5)
out = {
    "pairs": len(pairs),
    "source": f"{runs[0]}/eval/samples.jsonl, budget 128, right answers",
    "scorers": {},
}
wins = {}
for run in runs:
    scorer = TrainedScorer(f"{run}/scorer")
    a = scorer.score_records([p[0] for p in pairs])
    b = scorer.score_records([p[1] for p in pairs])
    wins[run] = [x[0] > y[0] for x, y in zip(a, b)]
    out["scorers"][run] = {"right_ranked_first": sum(wins[run]) / len(pairs)}
if len(runs) == 2:
    out["same_decision"] = sum(x == y for x, y in zip(*wins.values())) / len(pairs)
print(json.dumps(out, indent=1))
