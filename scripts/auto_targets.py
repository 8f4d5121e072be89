"""Issue #21's targets for auto mode, each verdict from its interval (thinkbudget.targets' one rule).

    python scripts/auto_targets.py runs/auto/eval/rl runs/auto/eval/rl-chain --baseline runs/proof/eval/rl --output <path>

Reads one or more evaluation folders of one model (eval/evaluate.py with methods ``no_think``, ``think``,
``auto`` and ``auto_budget``, and the explicit conditions to check against the baseline; their
``samples.jsonl``) and writes ``<output>.json`` / ``.md``. Per task that has both
``auto`` and ``think`` samples:

- auto accuracy within 2 points of always thinking: the paired difference (auto − think, over problems)
  has its lower end at −2 points or above;
- auto uses at least 40 % fewer total tokens (thinking + answer) than always thinking: the paired saving
  ``(think − auto) / think's mean`` has its lower end at 0.40 or above;
- on the task that carries the decision (``--synthetic``, default ``mix:step+chain``): the think rate on
  the hardest quarter of problems (by the full reference trace's thinking tokens) >= 80 % and on the
  easiest quarter <= 20 % (its complement >= 80 %), overall between 20 and 80 % (both ends, Wilson);
- auto with budget B (``auto_budget``): within budget >= 95 % of the samples that think.

With ``--baseline`` (an evaluation of the model before auto training on the same problems and seeds):
every explicit condition both hold (thinking off, free thinking, stated budgets; accuracy, and within
budget where a budget is stated) must not regress beyond its interval: the paired difference
(this − baseline) has its upper end at zero or above.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thinkbudget.evaluation import (
    difficulty_quarters,
    load_records,
    paired_bootstrap,
    paired_difference,
    per_problem,
    samples_of,
    wilson_interval,
)
from thinkbudget.targets import Targets, diff_text, interval, pct, rate_target
from thinkbudget.tasks import MIX_PREFIX

EXPLICIT_METHODS = ("no_think", "no_think_flag", "think", "think_flag", "budget_prompt")


def load_samples(folder: Path) -> list[dict[str, Any]]:
    path = folder / "samples.jsonl"
    if not path.is_file():
        raise SystemExit(f"auto_targets.py: error: {path} does not exist (run eval/evaluate.py first)")
    return list(load_records(path).values())


def label_order(label: str) -> int:
    """Budget labels in reading order: ``off`` / ``none`` first, then budgets by size."""
    return int(label) if label.isdigit() else -1


def by_family(records: Sequence[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """Per generated family of a ``mix:`` task (a problem id is ``<family>-<hash>``) and per condition:
    problems, accuracy, think rate, mean thinking and total tokens. Where a saving comes from: answers
    without thinking, or shorter traces."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r["task"] == task:
            groups.setdefault(
                (r["problem_id"].split("-")[0], r["method"], str(r["budget_label"])), []
            ).append(r)
    rows = []
    for (family, method, label), rs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], label_order(kv[0][2]))
    ):
        n = len(rs)
        rows.append(
            {
                "family": family,
                "method": method,
                "budget": label,
                "n": n,
                "accuracy": sum(bool(r["correct"]) for r in rs) / n,
                "think_rate": sum(r["thinking_tokens"] > 0 for r in rs) / n,
                "mean_thinking_tokens": sum(r["thinking_tokens"] for r in rs) / n,
                "mean_total_tokens": sum(r["total_tokens"] for r in rs) / n,
            }
        )
    return rows


def auto_targets(
    records: Sequence[dict[str, Any]],
    baseline: Sequence[dict[str, Any]] | None = None,
    *,
    synthetic: str = "mix:step+chain",
) -> Targets:
    t = Targets()
    tasks = sorted({r["task"] for r in records}, key=lambda x: (x != synthetic, x))
    for task in tasks:
        auto, think = samples_of(records, task, "auto", "none"), samples_of(records, task, "think", "none")
        if not auto or not think:
            continue
        d = paired_difference(records, records, task, ("auto", "think"), ("none", "none"), "correct")
        t.diff(task, "auto accuracy within 2 points of always thinking (auto − think, paired)", d, -0.02)
        tokens = [
            per_problem(records, task, m, "none", lambda r: r["total_tokens"]) for m in ("think", "auto")
        ]
        s = paired_bootstrap(*tokens)
        mean = sum(tokens[0].values()) / len(tokens[0])
        if s and mean > 0:
            lo, hi = (c / mean for c in s["ci"])
            t.add(
                task,
                "auto uses >= 40 % fewer total tokens than always thinking (paired)",
                f"{pct(s['difference'] / mean)} ({interval(lo, hi)}) fewer, {mean:.1f} → "
                f"{mean - s['difference']:.1f} tokens, n = {s['n']}",
                lo,
                0.40,
                point=s["difference"] / mean,
            )
        thinks = [r["thinking_tokens"] > 0 for r in auto]
        quarters = difficulty_quarters(auto) if task == synthetic else None
        if quarters:
            easy, hard = ([r for _, rs in quarters[q] for r in rs] for q in (0, -1))
            rate_target(
                t,
                task,
                "think rate on the hardest quarter >= 80 %",
                [r["thinking_tokens"] > 0 for r in hard],
                0.80,
            )
            rate_target(
                t,
                task,
                "answers without thinking on the easiest quarter >= 80 % (think rate <= 20 %)",
                [r["thinking_tokens"] == 0 for r in easy],
                0.80,
            )
            rate_target(t, task, "overall think rate >= 20 %", thinks, 0.20)
            rate_target(
                t,
                task,
                "overall think rate <= 80 % (answers without thinking >= 20 %)",
                [not x for x in thinks],
                0.20,
            )
        else:
            k, n = sum(thinks), len(thinks)
            lo, hi = wilson_interval(k, n)
            t.note(task, "think rate (reported)", f"{pct(k / n)} ({interval(lo, hi)}), n = {n}", None)
        for label in sorted(
            {str(r["budget_label"]) for r in records if r["task"] == task and r["method"] == "auto_budget"},
            key=int,
        ):
            flags = [
                bool(r["within_budget"])
                for r in samples_of(records, task, "auto_budget", label)
                if r["thinking_tokens"] > 0
            ]
            if flags:
                rate_target(
                    t, task, f"auto at budget {label}: within budget >= 95 % where it thinks", flags, 0.95
                )
    if baseline:
        conditions = sorted(
            {
                (r["task"], r["method"], str(r["budget_label"]))
                for r in records
                if r["method"] in EXPLICIT_METHODS
            }
            & {(r["task"], r["method"], str(r["budget_label"])) for r in baseline}
        )
        for task, method, label in sorted(conditions, key=lambda c: (c[0], c[1], label_order(c[2]))):
            metrics = ["correct"] + (["within_budget"] if method == "budget_prompt" else [])
            for metric in metrics:
                d = paired_difference(records, baseline, task, method, label, metric)
                if d:
                    name = "accuracy" if metric == "correct" else "within budget"
                    t.note(
                        task,
                        f"no regression: {method} at {label}, {name} (this − before, paired; upper end >= 0)",
                        diff_text(d),
                        d["ci"][1] >= 0,
                        diff=d,
                    )
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "eval_dir", nargs="+", help="evaluation folders of the auto model (paths, each with samples.jsonl)"
    )
    parser.add_argument("--output", required=True, help="output path without extension")
    parser.add_argument(
        "--baseline", help="evaluation folder of the model before auto training, same problems"
    )
    parser.add_argument(
        "--synthetic", default="mix:step+chain", help="the task that carries the decision targets"
    )
    args = parser.parse_args(argv)
    base = load_samples(Path(args.baseline)) if args.baseline else None  # a bad flag fails before any work
    records = [r for folder in args.eval_dir for r in load_samples(Path(folder))]
    if not any(r["method"] == "auto" for r in records):
        raise SystemExit(
            f"auto_targets.py: error: no auto samples in {', '.join(args.eval_dir)} (evaluate with --methods auto)"
        )
    t = auto_targets(records, base, synthetic=args.synthetic)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    source = {"eval_dir": args.eval_dir, "baseline": args.baseline, "synthetic": args.synthetic}
    family = by_family(records, args.synthetic) if args.synthetic.startswith(MIX_PREFIX) else []
    out.with_suffix(".json").write_text(
        json.dumps({**source, "targets": t.rows, "by_family": family}, indent=2) + "\n"
    )
    lines = [
        "# Auto mode: issue #21's targets",
        "",
        f"Generated by `scripts/auto_targets.py` from {', '.join(f'`{d}`' for d in args.eval_dir)}"
        + (f" against `{args.baseline}`" if args.baseline else "")
        + ". A target is reached only when its 95 % interval clears the bar (paired bootstrap over problems "
        "for differences, Wilson for rates).",
        "",
        *t.table(),
    ]
    if family:
        lines += [
            "",
            f"## {args.synthetic} by family",
            "",
            "| family | method | budget | n | accuracy | think rate | mean thinking tokens | mean total tokens |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {f['family']} | {f['method']} | {f['budget']} | {f['n']} | {pct(f['accuracy'])} | "
            f"{pct(f['think_rate'])} | {f['mean_thinking_tokens']:.1f} | {f['mean_total_tokens']:.1f} |"
            for f in family
        ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
