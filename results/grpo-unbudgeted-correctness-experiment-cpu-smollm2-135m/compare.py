"""Budgets 32 / 64 / 128 on the proof's 400 held-out chain problems: GRPO with correctness_unbudgeted (eval-experiment/)
against the eighth proof's GRPO (eval-proof/), both from the same SFT checkpoint, evaluated by the same command.
Writes compare.md; every figure is read from the samples.

    python results/grpo-unbudgeted-correctness-experiment-cpu-smollm2-135m/compare.py
"""

import json
from pathlib import Path

from thinkbudget.evaluation import wilson_interval

HERE = Path(__file__).resolve().parent


def load(name: str) -> dict[str, dict]:
    rows = [json.loads(x) for x in (HERE / name / "samples.jsonl").read_text().splitlines() if x.strip()]
    return {r["key"]: r for r in rows}


exp, proof = load("eval-experiment"), load("eval-proof")
lines = [
    "| GRPO | budget | n | within budget (95 % CI) | accuracy | right and within | completions identical to the proof's |",
    "|---|---:|---:|---|---:|---:|---:|",
]
for label, runs in (("correctness_unbudgeted (this experiment)", exp), ("the eighth proof's rewards", proof)):
    for b in (32, 64, 128):
        r = [x for x in runs.values() if x["budget"] == b]
        n = len(r)
        w = sum(x["within_budget"] for x in r)
        lo, hi = wilson_interval(w, n)
        acc = sum(x["correct"] for x in r) / n
        both = sum(x["correct"] and x["within_budget"] for x in r) / n
        same = sum(x["completion"] == proof[x["key"]]["completion"] for x in r) / n
        lines.append(
            f"| {label} | {b} | {n} | {100 * w / n:.1f} % ({100 * lo:.1f} to {100 * hi:.1f} %) | "
            f"{100 * acc:.1f} % | {100 * both:.1f} % | {100 * same:.1f} % |"
        )
(HERE / "compare.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
