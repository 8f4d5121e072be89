"""The experiment against the fifth proof's SFT+GRPO on the same 400 held-out chain problems: per condition
accuracy and within budget (Wilson intervals) and the paired difference (experiment minus proof, bootstrap
over problems); writes compare.json and compare.md into OUT_DIR (default: beside this file), the proof
column headed LABEL (default: fifth proof).

    python results/grpo-binding-budget-experiment-cpu-smollm2-135m/compare.py EXPERIMENT_SAMPLES PROOF_SAMPLES [OUT_DIR [LABEL]]
"""

import json
import sys
from pathlib import Path

from thinkbudget.evaluation import paired_difference, wilson_interval

CONDITIONS = [
    ("no_think", "off"),
    ("budget_prompt", "32"),
    ("budget_prompt", "64"),
    ("budget_prompt", "128"),
    ("think", "none"),
]


def load(path: str) -> list[dict]:
    return [json.loads(line) for line in open(path)]


def rate(records, method, budget, metric):
    rows = [
        r
        for r in records
        if r["task"] == "chain" and r["method"] == method and str(r["budget_label"]) == budget
    ]
    k = sum(bool(r.get(metric)) for r in rows)
    lo, hi = wilson_interval(k, len(rows))
    return {"rate": k / len(rows) if rows else None, "ci": [lo, hi], "n": len(rows)}


def main(exp_path: str, proof_path: str, out_dir: str | None = None, label: str = "fifth proof") -> None:
    exp, proof = load(exp_path), load(proof_path)
    out = []
    for method, budget in CONDITIONS:
        row = {"method": method, "budget": budget}
        for metric in ("correct", "within_budget"):
            if metric == "within_budget" and method != "budget_prompt":
                continue
            row[metric] = {
                "experiment": rate(exp, method, budget, metric),
                "proof": rate(proof, method, budget, metric),
                "paired": paired_difference(exp, proof, "chain", method, budget, metric),
            }
        out.append(row)
    here = Path(out_dir) if out_dir else Path(__file__).parent
    (here / "compare.json").write_text(json.dumps(out, indent=2) + "\n")

    def fmt(r):
        return f"{100 * r['rate']:.1f} % ({100 * r['ci'][0]:.1f} to {100 * r['ci'][1]:.1f}), n = {r['n']}"

    def diff(d):
        return f"{100 * d['difference']:+.1f} pts ({100 * d['ci'][0]:+.1f} to {100 * d['ci'][1]:+.1f})"

    lines = [
        f"| condition | metric | experiment | {label} | experiment − proof (paired) |",
        "|---|---|---|---|---|",
    ]
    for row in out:
        for metric in ("correct", "within_budget"):
            if metric in row:
                m = row[metric]
                name = "accuracy" if metric == "correct" else "within budget"
                lines.append(
                    f"| {row['method']} {row['budget']} | {name} | {fmt(m['experiment'])} | {fmt(m['proof'])} | {diff(m['paired'])} |"
                )
    (here / "compare.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(*sys.argv[1:5])
