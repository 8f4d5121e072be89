"""Within budget, accuracy and right-and-within at budget 32 for SFT and two GRPO checkpoints, on the proof's 400
held-out chain problems, from the samples.jsonl beside this file (a diagnostic, not a target).

    python results/cpu-proof-smollm2-135m/diagnostic-budget-32/summarize.py
"""

import json
from pathlib import Path

from thinkbudget.evaluation import wilson_interval

HERE = Path(__file__).resolve().parent
lines = [
    "| model | n | within budget (95 % CI) | accuracy | right and within budget |",
    "|---|---:|---|---:|---:|",
]
for name in ("sft", "rl-checkpoint-12", "rl-checkpoint-15"):
    rows = [json.loads(x) for x in (HERE / name / "samples.jsonl").read_text().splitlines() if x.strip()]
    n = len(rows)
    within = sum(r["within_budget"] for r in rows)
    lo, hi = wilson_interval(within, n)
    right = sum(r["correct"] for r in rows)
    both = sum(r["correct"] and r["within_budget"] for r in rows)
    lines.append(
        f"| {name} | {n} | {100 * within / n:.1f} % ({100 * lo:.1f} to {100 * hi:.1f} %) | "
        f"{100 * right / n:.1f} % | {100 * both / n:.1f} % |"
    )
(HERE / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
