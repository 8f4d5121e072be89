"""The CPU proof's targets (issue: "Prove the method on the CPU"), each reached or not, with intervals.

    python scripts/proof_targets.py runs/main-cpu-proof --output results/cpu-proof-smollm2-135m/targets

Reads three evaluations of a main-job run folder (``eval/{sft,rl,forcing}``: results.json and
samples.jsonl) and writes ``targets.md`` and ``targets.json``. Differences between two models are
paired by problem (the same problems, one sample each): the mean difference and its 95 % percentile
bootstrap interval over problems (:func:`thinkbudget.evaluation.paired_difference`).

Targets, for SFT+GRPO (``rl``), per task:
- thinking-off compliance >= 99 % (no thinking tokens, no further think block), with no reasoning
  moved past the answer cap (``reasoning_after_think`` rate reported beside it);
- within budget >= 90 % at every budget, without forcing; relative length error <= 25 %;
- within-budget share >= SFT's at every budget, and accuracy >= SFT's at the smallest budget;
- accuracy with the budget stated >= SFT + budget forcing at the same budget;
- free thinking more accurate than thinking off on the synthetic (multi-step) tasks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from thinkbudget.evaluation import fmt, load_records, load_results, paired_difference

MODELS = ("sft", "rl", "forcing")  # the targets compare these three (the base model is not in them)


def rows_by(results: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["task"], r["method"], str(r["budget_label"])): r for r in results["rows"]}


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def diff_cell(d: dict[str, Any]) -> str:
    lo, hi = d["ci"]
    return f"{100 * d['difference']:+.1f} pts ({100 * lo:+.1f} to {100 * hi:+.1f}), n = {d['n']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="main-job run folder (with eval/sft, eval/rl, eval/forcing)")
    parser.add_argument("--output", required=True, help="output path without extension")
    args = parser.parse_args(argv)
    run = Path(args.run)
    try:
        results = {m: load_results(run / "eval" / m) for m in MODELS}
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"proof_targets.py: error: {e}") from None
    records = {m: list(load_records(run / "eval" / m / "samples.jsonl").values()) for m in MODELS}
    rows = {m: rows_by(r) for m, r in results.items()}
    tasks = sorted({t for (t, _, _) in rows["rl"]})
    budgets = sorted({int(b) for (_, meth, b) in rows["rl"] if meth == "budget_prompt"})
    out: list[dict[str, Any]] = []

    def add(
        task: str, target: str, value: str, ok: bool | None, detail: dict[str, Any] | None = None
    ) -> None:
        verdict = "–" if ok is None else ("reached" if ok else "NOT reached")
        out.append({"task": task, "target": target, "value": value, "verdict": verdict, **(detail or {})})

    for task in tasks:
        r = rows["rl"].get((task, "no_think", "off"))
        if r:
            ok = r["no_think_compliance"] is not None and r["no_think_compliance"] >= 0.99
            add(
                task,
                "thinking-off compliance >= 99 %",
                f"{pct(r['no_think_compliance'])} "
                f"(reasoning past the answer cap: {pct(r.get('reasoning_after_think_rate'))})",
                ok,
            )
        for b in budgets:
            r = rows["rl"].get((task, "budget_prompt", str(b)))
            if not r:
                continue
            add(
                task,
                f"within budget >= 90 % at {b}",
                pct(r["within_budget_rate"]),
                r["within_budget_rate"] >= 0.9,
            )
            err = r["relative_length_error"]
            add(task, f"relative length error <= 25 % at {b}", pct(err), err is not None and err <= 0.25)
            d = paired_difference(
                records["rl"], records["sft"], task, "budget_prompt", str(b), "within_budget"
            )
            if d:
                add(
                    task,
                    f"within budget: SFT+GRPO >= SFT at {b}",
                    diff_cell(d),
                    d["difference"] >= 0,
                    {"diff": d},
                )
            d = paired_difference(
                records["rl"],
                records["forcing"],
                task,
                ("budget_prompt", "budget_forcing"),
                str(b),
                "correct",
            )
            if d:
                add(
                    task,
                    f"accuracy: stated budget (SFT+GRPO) >= SFT + forcing at {b}",
                    diff_cell(d),
                    d["difference"] >= 0,
                    {"diff": d},
                )
        if budgets:
            d = paired_difference(
                records["rl"], records["sft"], task, "budget_prompt", str(budgets[0]), "correct"
            )
            if d:
                add(
                    task,
                    f"accuracy: SFT+GRPO >= SFT at the smallest budget ({budgets[0]})",
                    diff_cell(d),
                    d["difference"] >= 0,
                    {"diff": d},
                )
        d = paired_difference(
            records["rl"], records["rl"], task, ("think", "no_think"), ("none", "off"), "correct"
        )
        if d:
            multi_step = task != "gsm8k"
            add(
                task,
                "free thinking more accurate than thinking off (SFT+GRPO)",
                diff_cell(d),
                d["difference"] > 0 if multi_step else None,
                {"diff": d},
            )

    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# CPU proof: targets",
        "",
        f"Run folder `{run}`; evaluations `{', '.join(MODELS)}`. Differences: paired by problem, mean and 95 % "
        "bootstrap interval over problems (percentage points). Generated by `scripts/proof_targets.py`.",
        "",
        "| task | target | value | verdict |",
        "|---|---|---|---|",
    ]
    lines += [f"| {o['task']} | {o['target']} | {o['value']} | {o['verdict']} |" for o in out]
    lines += ["", "Mean thinking tokens (SFT → SFT+GRPO) at each stated budget:", ""]
    for task in tasks:
        cells = []
        for b in budgets:
            s, g = (
                rows["sft"].get((task, "budget_prompt", str(b))),
                rows["rl"].get((task, "budget_prompt", str(b))),
            )
            if s and g:
                cells.append(f"{b}: {fmt(s['mean_thinking_tokens'])} → {fmt(g['mean_thinking_tokens'])}")
        lines.append(f"- {task}: " + "; ".join(cells))
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {path}.md and {path}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
