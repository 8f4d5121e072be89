"""Would the policy's token-level confidence pick better than its mean log-probability? (DeepConf, Fu et
al. 2025, filters traces by their least confident stretch.) For 40 problems with both right and wrong
answers at one budget in the frontier run's held-out evaluation: every answer's per-token log-probability
under the policy (one bf16 forward), then the share of (right, wrong) pairs of one problem that the mean,
the minimum and the lowest 4-token window mean rank right first (ties 1/2).

    python results/frontier-cpu-smollm2-135m/experiment-slip-pairs/confidence_check.py runs/frontier-v4 \
        runs/proof-v11/rl 128 40 > results/frontier-cpu-smollm2-135m/experiment-slip-pairs/confidence_check.json
"""

import json
import random
import sys
from collections import defaultdict
from itertools import product

import torch

from thinkbudget import models
from thinkbudget.evaluation import load_records

run, checkpoint, budget, n_problems = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
WINDOW = 4  # tokens: about one terse chain line
groups = defaultdict(list)
for r in load_records(f"{run}/eval/samples.jsonl").values():
    if r["budget_label"] == budget:
        groups[r["problem_id"]].append(r)
mixed = [
    p for p, g in sorted(groups.items()) if any(r["correct"] for r in g) and not all(r["correct"] for r in g)
]
random.Random(0).shuffle(mixed)
mixed = mixed[:n_problems]
model, tokenizer = models.load_model_and_tokenizer(checkpoint, dtype="bfloat16")
model.eval()
features = defaultdict(list)  # problem -> [(correct, {feature: value})]
for p in mixed:
    for r in groups[p]:
        prompt = tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + r["completion_ids"]])
        with torch.inference_mode():
            logp = torch.log_softmax(model(ids).logits[0, len(prompt) - 1 : -1].float(), -1)
        t = logp.gather(1, torch.tensor(r["completion_ids"])[:, None])[:, 0]
        window = t.unfold(0, WINDOW, 1).mean(1) if len(t) >= WINDOW else t.mean()[None]
        features[p].append(
            (
                r["correct"],
                {"mean": t.mean().item(), "min": t.min().item(), "lowest_window": window.min().item()},
            )
        )
out = {
    "run": run,
    "checkpoint": checkpoint,
    "budget": budget,
    "problems": len(mixed),
    "window_tokens": WINDOW,
}
for name in ("mean", "min", "lowest_window"):
    wins = pairs = 0.0
    for g in features.values():
        for (_, a), (_, b) in product([x for x in g if x[0]], [x for x in g if not x[0]]):
            pairs += 1
            wins += 1.0 if a[name] > b[name] else 0.5 if a[name] == b[name] else 0.0
    out[name] = {"pairs": int(pairs), "right_ranked_first": wins / pairs}
print(json.dumps(out, indent=1))
