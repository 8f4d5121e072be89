"""Each GRPO variant of this experiment against the eighth proof's GRPO, on the proof's 400 held-out chain problems
at budgets 32 / 64 / 128 (all from the proof's SFT checkpoint). Writes compare.md; every figure is read from the
samples: within budget (Wilson interval), accuracy, right and within, stated budget minus the proof's SFT + budget
forcing at 32 (paired bootstrap over problems, the proof's target), the over-budget answers at 32 by trace lines,
and the share of completions identical to the proof's.

    python results/grpo-kl-experiment-cpu-smollm2-135m/compare.py
"""

import json
from collections import Counter
from pathlib import Path

from thinkbudget.evaluation import paired_bootstrap, wilson_interval

HERE = Path(__file__).resolve().parent
PROOF = HERE.parent / "cpu-proof-smollm2-135m" / "eval"
VARIANTS = {  # folder: what differs from the proof's GRPO
    "kl0.1": "beta 0.1",
    "kl0.1-rl-weights-3-1-2": "beta 0.1, GRPO prompts at 32 / 64 / 128 weighted 3 : 1 : 2",
    "kl0.3": "beta 0.3",
    "boundary32": "beta 0, 170 budget-32 prompts added on 5-7-step problems",
    "boundary32-5step": "beta 0, 62 budget-32 prompts added on 5-step problems",
    "../grpo-sft-anchor-experiment-cpu-smollm2-135m": "beta 0, SFT anchor (PPO-ptx) weight 1",
}


def load(path: Path) -> dict[tuple, dict]:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return {(r["method"], r["budget"], r["problem_id"]): r for r in rows if r["task"] == "chain"}


proof = load(PROOF / "rl" / "samples.jsonl")
forcing = {
    k[2]: float(r["correct"]) for k, r in load(PROOF / "forcing" / "samples.jsonl").items() if k[1] == 32
}
runs = {"the eighth proof (beta 0)": proof}
for folder, label in VARIANTS.items():
    path = HERE / folder / "eval-rl" / "samples.jsonl"
    if path.is_file():
        runs[f"{label} (`{folder}/`)"] = load(path)

lines = [
    "| GRPO | budget | n | within budget (95 % CI) | accuracy | right and within | over budget: trace lines "
    "| stated minus forcing at 32 (95 % CI) | completions identical to the proof's |",
    "|---|---:|---:|---|---:|---:|---|---|---:|",
]
for label, recs in runs.items():
    for b in (32, 64, 128):
        r = [x for k, x in recs.items() if k[0] == "budget_prompt" and k[1] == b]
        n = len(r)
        w = sum(x["within_budget"] for x in r)
        lo, hi = wilson_interval(w, n)
        acc = sum(x["correct"] for x in r) / n
        both = sum(x["correct"] and x["within_budget"] for x in r) / n
        over = Counter(x["trace_lines"] for x in r if not x["within_budget"])
        over_text = ", ".join(f"{k}: {v}" for k, v in sorted(over.items())) or "–"
        gap = "–"
        if b == 32:
            d = paired_bootstrap({x["problem_id"]: float(x["correct"]) for x in r}, forcing)
            gap = f"{100 * d['difference']:+.1f} pts ({100 * d['ci'][0]:+.1f} to {100 * d['ci'][1]:+.1f})"
        same = (
            sum(x["completion"] == proof[("budget_prompt", b, x["problem_id"])]["completion"] for x in r) / n
        )
        lines.append(
            f"| {label} | {b} | {n} | {100 * w / n:.1f} % ({100 * lo:.1f} to {100 * hi:.1f} %) | {100 * acc:.1f} % | "
            f"{100 * both:.1f} % | {over_text} | {gap} | {100 * same:.0f} % |"
        )
(HERE / "compare.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
