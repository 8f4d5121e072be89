"""Auto mode against always / never thinking, before and after the auto GRPO steps, paired over problems.

    python results/auto-grpo-experiment-cpu-smollm2-135m/compare.py runs/auto-grpo/eval \
        --output results/auto-grpo-experiment-cpu-smollm2-135m/compare

Reads each evaluation's ``results.json`` (its own per-condition metrics: accuracy with its interval, mean
total tokens, auto's think rate overall and per difficulty quarter) and ``samples.jsonl`` (for the paired
differences) from ``before/`` and ``after/`` (eval/evaluate.py with methods no_think, think, auto,
auto_budget) and writes ``compare.json`` / ``compare.md``: per model, accuracy, mean total tokens and
think rate per condition; auto minus always-thinking (accuracy, paired) and auto's token saving; the think
rate on the easiest and hardest quarter of problems; after minus before per condition (paired). The bars are
issue #21's targets, each verdict from its interval (paired bootstrap over problems for differences, Wilson for
shares of problems).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from thinkbudget.evaluation import paired_bootstrap, paired_difference, wilson_interval

# The evaluated conditions, (method, budget label).
CONDITIONS = (
    ("no_think", "off"),
    ("think", "none"),
    ("auto", "none"),
    ("auto_budget", "32"),
    ("auto_budget", "128"),
)


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open()]


def rows_of(records, method, label):
    return [
        r for r in records if r["task"] == "chain" and r["method"] == method and r["budget_label"] == label
    ]


def rate_ci(rate: float, n: int) -> dict:
    """A share of ``n`` problems with its Wilson interval."""
    return {"value": rate, "ci": list(wilson_interval(round(rate * n), n)), "n": n}


def summary(results: dict) -> dict:
    """The evaluation's own row per condition (thinkbudget.evaluation computed it from the same samples)."""
    rows = {(r["task"], r["method"], r["budget_label"]): r for r in results["rows"]}
    return {f"{m}@{b}": rows["chain", m, b] for m, b in CONDITIONS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("eval_dir", help="folder with before/ and after/ evaluations (path)")
    ap.add_argument("--output", required=True, help="output path without extension")
    args = ap.parse_args()
    models = {m: load(Path(args.eval_dir) / m / "samples.jsonl") for m in ("before", "after")}
    results = {m: json.loads((Path(args.eval_dir) / m / "results.json").read_text()) for m in models}
    report: dict = {
        "models": {m: summary(r) for m, r in results.items()},
        "targets": [],
        "after_minus_before": {},
    }
    for m, recs in models.items():
        d = paired_difference(recs, recs, "chain", ("auto", "think"), ("none", "none"), "correct")
        s = report["models"][m]
        # Token saving: the paired per-problem token difference (think - auto) over always thinking's mean.
        tokens = {
            k: {r["problem_id"]: r["total_tokens"] for r in rows_of(recs, k, "none")}
            for k in ("think", "auto")
        }
        t = paired_bootstrap(tokens["think"], tokens["auto"])
        mean_think = s["think@none"]["mean_total_tokens"]
        saving = {"value": t["difference"] / mean_think, "ci": [c / mean_think for c in t["ci"]], "n": t["n"]}
        auto = s["auto@none"]
        quart = auto["by_difficulty"]
        q1, q4 = (rate_ci(q["think_rate"], q["n"]) for q in (quart[0], quart[-1]))
        rate = rate_ci(auto["think_rate"], auto["n"])
        report["targets"] += [
            {
                "model": m,
                "target": "auto accuracy within 2 points of always thinking (paired interval's lower end >= -2)",
                "value": d,
                "reached": d["ci"][0] >= -0.02,
            },
            {
                "model": m,
                "target": "auto uses >= 40 % fewer total tokens than always thinking (paired)",
                "value": saving,
                "reached": saving["ci"][0] >= 0.40,
            },
            {
                "model": m,
                "target": "think rate on the hardest quarter >= 80 %",
                "value": q4,
                "reached": q4["ci"][0] >= 0.80,
            },
            {
                "model": m,
                "target": "think rate on the easiest quarter <= 20 %",
                "value": q1,
                "reached": q1["ci"][1] <= 0.20,
            },
            {
                "model": m,
                "target": "overall think rate between 20 % and 80 %",
                "value": rate,
                "reached": rate["ci"][0] >= 0.20 and rate["ci"][1] <= 0.80,
            },
        ]
    for method, label in CONDITIONS:
        for metric in ("correct", "within_budget"):
            d = paired_difference(models["after"], models["before"], "chain", method, label, metric)
            report["after_minus_before"][f"{method}@{label}/{metric}"] = d
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))

    def pts(d):
        return f"{100 * d['difference']:+.1f} pts ({100 * d['ci'][0]:+.1f} to {100 * d['ci'][1]:+.1f}), n = {d['n']}"

    lines = [
        "# Auto mode before and after the auto GRPO steps (chain, held out)",
        "",
        "Generated by `compare.py` from the two evaluations' results and samples; intervals: the evaluation's "
        "bootstrap over problems for accuracy, paired bootstrap over problems for differences, Wilson for shares "
        "of problems in the targets. Think rate: auto conditions only (thinking off never thinks, free thinking "
        "always does).",
        "",
        "| model | condition | n | accuracy (95 % CI) | mean total tokens | think rate |",
        "|---|---|---|---|---|---|",
    ]
    for m, s in report["models"].items():
        for cond, v in s.items():
            lo, hi = v["accuracy_ci"]
            think = "–" if v["think_rate"] is None else f"{100 * v['think_rate']:.1f} %"
            lines.append(
                f"| {m} | {cond} | {v['n']} | {100 * v['accuracy']:.1f} % ({100 * lo:.1f} to {100 * hi:.1f}) | "
                f"{v['mean_total_tokens']:.1f} | {think} |"
            )
    lines += [
        "",
        "## After minus before (paired over problems)",
        "",
        "| condition | accuracy | within budget |",
        "|---|---|---|",
    ]
    for method, label in CONDITIONS:
        acc = report["after_minus_before"][f"{method}@{label}/correct"]
        wb = report["after_minus_before"][f"{method}@{label}/within_budget"]
        lines.append(
            f"| {method}@{label} | {pts(acc)} | {pts(wb) if label not in ('off', 'none') else '–'} |"
        )
    lines += ["", "## Issue #21's targets", "", "| model | target | value | verdict |", "|---|---|---|---|"]
    for t in report["targets"]:
        v = t["value"]
        if "difference" in v:
            value = pts(v)
        else:
            value = (
                f"{100 * v['value']:.1f} % ({100 * v['ci'][0]:.1f} to {100 * v['ci'][1]:.1f} %), n = {v['n']}"
            )
        lines.append(
            f"| {t['model']} | {t['target']} | {value} | {'reached' if t['reached'] else 'NOT reached'} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
