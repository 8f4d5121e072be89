"""The targets of "Thinking that pays", each reached or not, computed from a main-job run's result files.

    python scripts/proof_targets.py runs/main-cpu-proof --output results/cpu-proof-smollm2-135m/targets
    python scripts/proof_targets.py runs/main-cpu --time_limit_min 30 --output results/demo-cpu-smollm2-135m/targets
    python scripts/proof_targets.py runs/exp --baseline runs/main-cpu-proof --output runs/exp/targets

The main job runs it as its ``targets`` stage (``report/targets/``) with the profile's ``time_limit_min``.

Reads ``eval/rl`` (SFT+GRPO), and where present ``eval/forcing`` (SFT + budget forcing),
``eval/sft`` and ``eval/control`` (SFT+GRPO on more problems of a task: the conditions it ran carry
that task's compliance and word-problem within-budget targets): their ``results.json`` and every sample in ``samples.jsonl``; and
``pipeline.json`` for the wall time of each stage. Writes ``targets.md`` and ``targets.json``.

``--model sft`` makes the SFT model (``eval/sft``) the one the tables and targets are about, for
experiments that stop after SFT.

``--baseline RUN`` adds this run minus another one evaluated on the same problems (an experiment against
the proof), per condition, in accuracy and within-budget rate, each with its paired interval.

Every verdict is computed here from those files, with an interval, never typed by hand: a target is
**reached** only when its 95 % interval clears the bar (a point estimate that meets the bar while its
interval does not is "not reached" and says so). Intervals: Wilson score intervals for a rate of one
condition; paired bootstrap intervals over problems for a difference of two conditions on the same
problems (:func:`thinkbudget.evaluation.paired_bootstrap`); bootstrap over problems for ratios
(:func:`thinkbudget.evaluation.ratio_ci`).

The synthetic task (``--synthetic``, default ``chain``) carries the accuracy targets; GSM8K carries
control (within budget) only, since a 135M model does not solve it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from thinkbudget.evaluation import (
    load_records,
    load_results,
    paired_bootstrap,
    paired_difference,
    per_problem,
    ratio_ci,
    samples_of,
    wilson_interval,
)
from thinkbudget.targets import Targets, diff_text, interval, pct, rate_target, stage_record


def correct(r) -> float:
    return float(bool(r["correct"]))


def accuracy_curve(records, task: str, budgets: list[int]) -> list[dict[str, Any]]:
    """Accuracy at off -> each budget -> free, and the paired difference of each step."""
    steps = [("no_think", "off", "off")] + [("budget_prompt", str(b), str(b)) for b in budgets]
    steps.append(("think", "none", "free"))
    curve, previous = [], None
    for method, label, name in steps:
        values = per_problem(records, task, method, label, correct)
        if not values:
            continue
        acc = sum(values.values()) / len(values)
        lo, hi = wilson_interval(round(sum(values.values())), len(values))
        s = samples_of(records, task, method, label)
        lines = sum(r.get("trace_lines", 0) for r in s)
        within = [bool(r["within_budget"]) for r in s if r.get("within_budget") is not None]
        follows = [bool(r["answer_follows_trace"]) for r in s if r.get("answer_follows_trace") is not None]
        point = {
            "condition": name,
            "accuracy": acc,
            "ci": [lo, hi],
            "n": len(values),
            "mean_thinking_tokens": sum(r["thinking_tokens"] for r in s) / len(s),
            "within_budget": sum(within) / len(within) if within else None,
            "step_correctness": sum(r.get("trace_lines_correct", 0) for r in s) / lines if lines else None,
            "answer_follows_trace": sum(follows) / len(follows) if follows else None,
            # Right *and* within the stated budget (what a hard budget delivers), and the share of traces
            # that write no arithmetic line (the result alone: a guess when the problem has steps).
            "correct_within_budget": sum(bool(r["correct"]) and bool(r["within_budget"]) for r in s) / len(s)
            if within
            else None,
            "result_only": sum(not r.get("trace_lines") for r in s) / len(s) if name != "off" else None,
        }
        if previous is not None:
            point["step_from"] = previous[0]
            point["step"] = paired_bootstrap(values, previous[1])
        curve.append(point)
        previous = (name, values)
    return curve


def against_baseline(records, baseline, task: str, budgets: list[int]) -> list[dict[str, Any]]:
    """Per condition (off, each budget, free): this run minus a baseline run on the same problems, in
    accuracy and (under a budget) within-budget rate, each with its paired bootstrap interval."""
    rows = []
    conditions = [("no_think", "off", "off")] + [("budget_prompt", str(b), str(b)) for b in budgets]
    for method, label, name in [*conditions, ("think", "none", "free")]:
        row = {"condition": name}
        for metric in ("correct", "within_budget") if method == "budget_prompt" else ("correct",):
            row[metric] = paired_difference(records, baseline, task, method, label, metric)
        if row["correct"]:
            rows.append(row)
    return rows


def by_difficulty(records, task: str, budgets: list[int]) -> list[dict[str, Any]]:
    """Accuracy, mean thinking and the share of result-only traces (one line or none) per thinking
    condition and per difficulty: the problem's full-trace length in tokens, cut at the budgets. It
    shows whether the budget decides the kind of trace (a larger budget: full traces on longer
    problems) or the problem's length does (the same trace at every budget)."""
    edges = sorted(budgets)
    names = [f"<= {edges[0]}"] + [f"{a + 1}-{b}" for a, b in zip(edges, edges[1:])] + [f"> {edges[-1]}"]

    def bucket(r: dict[str, Any]) -> str:
        n = r.get("full_trace_tokens") or 0
        return names[next((i for i, e in enumerate(edges) if n <= e), len(edges))]

    rows = []
    steps = [("budget_prompt", str(b), str(b)) for b in budgets] + [("think", "none", "free")]
    for method, label, name in steps:
        s = [r for r in samples_of(records, task, method, label) if r.get("full_trace_tokens")]
        for b in names:
            cell = [r for r in s if bucket(r) == b]
            if cell:
                rows.append(
                    {
                        "condition": name,
                        "full_trace_tokens": b,
                        "n": len(cell),
                        "accuracy": sum(bool(r["correct"]) for r in cell) / len(cell),
                        "mean_thinking_tokens": sum(r["thinking_tokens"] for r in cell) / len(cell),
                        "result_only": sum((r.get("trace_lines") or 0) <= 1 for r in cell) / len(cell),
                    }
                )
    return rows


MODEL_NAMES = {"rl": "SFT+GRPO", "sft": "SFT", "base": "base model"}  # a run's evaluated models, by stage


def sample_granularity(traces: dict[str, str], record: dict[str, Any]) -> str | None:
    """The granularity of a sample's trace: the one of the problem's ``traces`` with as many arithmetic
    lines (each coarser one saves lines), among those of equal lines (``full`` and ``terse``) the one
    closest in length; ``result`` with no line; None when no trace has its number of lines."""
    from thinkbudget.data import RESULT

    n = record.get("trace_lines") or 0
    if n == 0:
        return RESULT
    same = [g for g, t in traces.items() if len(t.splitlines()) == n]
    if len(same) < 2:
        return same[0] if same else None
    thinking = record["completion"].split("</think>")[0].replace("<think>", "").strip()
    return min(same, key=lambda g: abs(len(traces[g]) - len(thinking)))


def granularity_table(
    run: Path, records, task: str, budgets: list[int], stage: str = "rl"
) -> list[dict[str, Any]]:
    """Does the stated budget decide how coarse the trace is? Per budget, the samples of ``stage``'s
    model (``rl``: SFT+GRPO, ``sft``: SFT; its evaluation ``eval/<stage>``, its checkpoint's tokenizer) against
    the data stage's target for each problem (:func:`thinkbudget.data.fit_trace` with the run's own mix,
    plan line included): the share at the target's granularity, coarser, finer (and over budget), and,
    where the mix opens traces with the problem's size, the share that states it right. A sample's
    granularity is the one of the problem's traces with as many arithmetic lines (each coarser one saves
    lines), ``result`` with none. Empty when the run folder lacks its data manifest or checkpoint."""
    import re

    from thinkbudget.data import RESULT, fit_trace, target_rule
    from thinkbudget.models import load_tokenizer
    from thinkbudget.tasks import load_problems

    manifest, checkpoint = run / "data" / "manifest.json", run / stage
    if not manifest.is_file() or not (checkpoint / "tokenizer_config.json").is_file():
        return []
    mix = json.loads(manifest.read_text())["config"]["data"]
    rule = target_rule(mix, task)
    plan = rule["plan"]
    config = load_results(run / "eval" / stage)["config"]
    limit = dict(zip(config.get("tasks") or [], config.get("task_limits") or [])).get(task, config["limit"])
    problems = {p.id: p for p in load_problems(task, config.get("split", "test"), limit, seed=config["seed"])}
    tokenizer = load_tokenizer(str(checkpoint))
    rows = []
    for b in budgets:
        counts: dict[str, int] = defaultdict(int)
        for r in samples_of(records, task, "budget_prompt", str(b)):
            p = problems.get(r["problem_id"])
            if p is None or not p.traces:
                continue
            order = [*p.traces, RESULT]  # finest first
            target = fit_trace(p, b, tokenizer, **rule)[0]
            got = sample_granularity(p.traces, r)
            if got is None:
                kind = "other"
            elif got == target:
                kind = "target"
            else:
                kind = "coarser" if order.index(got) > order.index(target) else "finer"
            counts["n"] += 1
            counts[kind] += 1
            counts[f"{kind}_over"] += not r["within_budget"]
            if plan and p.meta.get("steps"):
                thinking = r["completion"].split("</think>")[0]
                stated = re.search(r"(\d+) steps", thinking)
                right = bool(stated) and int(stated.group(1)) == p.meta["steps"]
                counts["size_right"] += right
                counts["size_right_target"] += right and kind == "target"
                counts["size_right_over"] += right and not r["within_budget"]
        if counts["n"]:
            n = counts["n"]
            row = {"model": MODEL_NAMES[stage], "budget": b, "n": n, "plan_line": plan}
            for kind in ("target", "coarser", "finer", "other"):
                row[kind] = counts[kind] / n
                row[f"{kind}_over_budget"] = counts[f"{kind}_over"] / n
            row["size_stated_right"] = counts["size_right"] / n if plan else None
            # Of the samples that state the right size: the share at the target, and over budget.
            k = counts["size_right"]
            row["right_size_at_target"] = counts["size_right_target"] / k if plan and k else None
            row["right_size_over_budget"] = counts["size_right_over"] / k if plan and k else None
            rows.append(row)
    return rows


def thinking_of(curve: list[dict[str, Any]]) -> dict[str, float]:
    """Mean thinking tokens at each thinking condition of a curve (the figure's second panel)."""
    return {p["condition"]: p["mean_thinking_tokens"] for p in curve if p["condition"] != "off"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="main-job run folder (with eval/rl; eval/forcing and eval/sft where run)")
    parser.add_argument("--output", required=True, help="output path without extension")
    parser.add_argument("--synthetic", default="chain", help="the task that carries the accuracy targets")
    parser.add_argument(
        "--time_limit_min",
        type=int,
        default=None,
        help="the stages' wall-time target (minutes); unset: not checked",
    )
    parser.add_argument(
        "--memory_limit_gib",
        type=float,
        default=None,
        help="every stage's peak resident memory target (GiB); unset: not checked",
    )
    parser.add_argument(
        "--model",
        choices=("rl", "sft"),
        default="rl",
        help="the evaluated model the tables and targets are about: rl (SFT+GRPO, eval/rl) or sft "
        "(SFT, eval/sft: for SFT-only experiments)",
    )
    parser.add_argument(
        "--baseline",
        help="another run folder evaluated on the same problems (its eval/<model>): this run minus it, per condition",
    )
    args = parser.parse_args(argv)
    run = Path(args.run)
    model, model_name = args.model, MODEL_NAMES[args.model]
    base_samples = Path(args.baseline) / "eval" / model / "samples.jsonl" if args.baseline else None
    if base_samples and not base_samples.is_file():  # a bad flag fails before any work
        raise SystemExit(
            f"proof_targets.py: error: --baseline {args.baseline}: {base_samples} does not exist"
        )
    try:
        load_results(run / "eval" / model)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"proof_targets.py: error: {e}") from None
    records = {
        m: list(load_records(run / "eval" / m / "samples.jsonl").values())
        for m in ("rl", "forcing", "sft", "control")
        if (run / "eval" / m / "samples.jsonl").is_file()
    }
    recs = records[model]  # the model the tables and targets are about
    syn = args.synthetic
    budgets = sorted({int(r["budget"]) for r in recs if r["method"] == "budget_prompt" and r["task"] == syn})
    if not budgets:
        raise SystemExit(
            f"proof_targets.py: error: no budget_prompt samples of task {syn!r} in {run}/eval/{model}"
        )
    t = Targets()

    # Accuracy: free thinking, thinking off, and the curve against the budget.
    curve = accuracy_curve(recs, syn, budgets)
    free = per_problem(recs, syn, "think", "none", correct)
    off = per_problem(recs, syn, "no_think", "off", correct)
    if free:
        acc = sum(free.values()) / len(free)
        lo, hi = wilson_interval(round(sum(free.values())), len(free))
        t.add(
            syn,
            "free-thinking accuracy >= 60 %",
            f"{pct(acc)} ({interval(lo, hi)}), n = {len(free)}",
            lo,
            0.6,
            point=acc,
        )
    d = paired_bootstrap(free, off)
    t.diff(syn, "thinking off at least 30 points below free thinking", d, 0.30)
    by_name = {p["condition"]: p for p in curve}
    ordered = ["off", *map(str, budgets)]
    points = [by_name[c]["accuracy"] for c in ordered if c in by_name]
    rising = len(points) == len(ordered) and all(a < b for a, b in zip(points, points[1:]))
    t.note(
        syn,
        f"accuracy rises with the budget: {' < '.join(ordered)} (point estimates)",
        " → ".join(pct(p) for p in points),
        rising if len(points) == len(ordered) else None,
    )
    small, large = str(budgets[0]), str(budgets[-1])
    # off -> the largest budget is make demo's own target (a small run shows that thinking pays at all).
    for a_name, b_name in (("off", small), (small, large), ("off", large)):
        a_method, a_label = ("no_think", "off") if a_name == "off" else ("budget_prompt", a_name)
        d = paired_bootstrap(
            per_problem(recs, syn, "budget_prompt", b_name, correct),
            per_problem(recs, syn, a_method, a_label, correct),
        )
        t.diff(syn, f"accuracy {a_name} → {b_name}: paired interval above zero", d, 1e-12)

    # Control: within budget, the budget's effect, budget use on problems that need more.
    for b in budgets:
        s = samples_of(recs, syn, "budget_prompt", str(b))
        rate_target(t, syn, f"within budget >= 95 % at {b}", [bool(r["within_budget"]) for r in s], 0.95)
    b0 = budgets[0]
    stated = per_problem(recs, syn, "budget_prompt", str(b0), lambda r: bool(r["within_budget"]))
    free_under = per_problem(
        recs, syn, "think", "none", lambda r: bool(r["think_closed"]) and r["thinking_tokens"] <= b0
    )
    d = paired_bootstrap(stated, free_under)
    t.diff(syn, f"budget effect at {b0} >= 30 points (stated minus free thinking under {b0} tokens)", d, 0.30)
    big = budgets[-1]
    need = {r["problem_id"] for r in recs if r["task"] == syn and (r.get("full_trace_tokens") or 0) > big}
    hard = [r for r in recs if r["problem_id"] in need]
    at_big, at_small = (
        per_problem(hard, syn, "budget_prompt", str(b), lambda r: r["thinking_tokens"]) for b in (big, b0)
    )
    shared = sorted(set(at_big) & set(at_small))
    if shared:
        ratio, lo, hi = ratio_ci([at_big[p] for p in shared], [at_small[p] for p in shared])
        t.add(
            syn,
            f"problems needing > {big} tokens: mean thinking at {big} >= 2x that at {b0}",
            f"{ratio:.2f}x ({interval(lo, hi, 1, 'x')}), n = {len(shared)}" if ratio is not None else "–",
            lo,
            2.0,
            point=ratio,
        )

    # Is the reasoning right: step correctness and answer follows trace, at every budget and free.
    conditions = [("budget_prompt", str(b)) for b in budgets] + [("think", "none")]
    for method, label in conditions:
        s = samples_of(recs, syn, method, label)
        name = "free" if method == "think" else label
        with_lines = [r for r in s if r.get("trace_lines")]
        if with_lines:
            ratio, lo, hi = ratio_ci(
                [r["trace_lines_correct"] for r in with_lines], [r["trace_lines"] for r in with_lines]
            )
            lines = sum(r["trace_lines"] for r in with_lines)
            t.add(
                syn,
                f"step correctness >= 90 % at {name}",
                f"{pct(ratio)} ({interval(lo, hi)}), {lines} lines",
                lo,
                0.9,
                point=ratio,
            )
        follows = [bool(r["answer_follows_trace"]) for r in s if r.get("answer_follows_trace") is not None]
        if follows:
            rate_target(t, syn, f"answer follows trace >= 90 % at {name}", follows, 0.9)

    # Stating the budget against forcing it (SFT + budget forcing), at the smallest budget.
    if "forcing" in records:
        d = paired_bootstrap(
            per_problem(recs, syn, "budget_prompt", str(b0), correct),
            per_problem(records["forcing"], syn, "budget_forcing", str(b0), correct),
        )
        t.diff(syn, f"accuracy: stated budget ({model_name}) >= forcing (SFT) + 5 points at {b0}", d, 0.05)

    # Thinking off on both paths, and control on word problems. A condition comes from the control
    # evaluation (eval/control: the same SFT+GRPO model on more problems) where it ran it: a 99 % or
    # 90 % bar needs more problems than the accuracy curve does.
    def control_samples(task: str, method: str, label: str) -> tuple[list[dict[str, Any]], str]:
        s = samples_of(records.get("control", []) if model == "rl" else [], task, method, label)
        return (s, " (eval/control)") if s else (samples_of(recs, task, method, label), "")

    for task in sorted({r["task"] for r in recs}):
        for method, path in (("no_think", "template pre-fill"), ("no_think_flag", "/no_think flag")):
            s, source = control_samples(task, method, "off")
            if s:
                rate_target(
                    t,
                    task,
                    f"thinking-off compliance >= 99 % ({path}){source}",
                    [not r["flags"]["thinking_in_no_think"] for r in s],
                    0.99,
                )
        s, source = control_samples(task, "think_flag", "none")
        if s:
            rate_target(
                t,
                task,
                f"/think flag opens and closes a think block >= 99 %{source}",
                [bool(r["think_closed"]) and r["thinking_tokens"] > 0 for r in s],
                0.99,
            )
        if task != syn:
            for b in budgets:
                s, source = control_samples(task, "budget_prompt", str(b))
                if s:
                    rate_target(
                        t,
                        task,
                        f"within budget >= 90 % at {b}{source}",
                        [bool(r["within_budget"]) for r in s],
                        0.9,
                    )

    # Wall time.
    seconds = stage_record(run / "pipeline.json", "seconds")
    if seconds and args.time_limit_min:
        t.wall_time(
            f"stages within {args.time_limit_min} min (pipeline.json; a resumed stage counts its last attempt)",
            seconds,
            args.time_limit_min,
        )
    peaks = stage_record(run / "pipeline.json", "peak_rss_mb")
    if peaks and args.memory_limit_gib:
        top = max(peaks.values()) / 1024
        detail = ", ".join(f"{k} {v / 1024:.1f}" for k, v in peaks.items())
        # Stages recorded before peaks were measured (a run resumed after the change) have none: the
        # target holds only if every stage was measured, and fails as soon as one measured stage exceeds it.
        unmeasured = [k for k in seconds if k not in peaks]
        value = f"{top:.1f} GiB at most: {detail} GiB"
        if unmeasured:
            value += f"; not measured: {', '.join(unmeasured)}"
        t.note(
            "all",
            f"every stage's peak resident memory <= {args.memory_limit_gib:g} GiB (pipeline.json)",
            value,
            False if top > args.memory_limit_gib else (None if unmeasured else True),
            stage_peak_rss_mb=peaks,
        )

    baseline = (
        against_baseline(recs, list(load_records(base_samples).values()), syn, budgets)
        if base_samples
        else []
    )

    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    difficulty = by_difficulty(recs, syn, budgets)
    # SFT+GRPO, then the SFT model where the run evaluated it: whether SFT taught the decision, or GRPO.
    granularity = granularity_table(run, recs, syn, budgets, stage=model) + (
        granularity_table(run, records["sft"], syn, budgets, stage="sft")
        if model == "rl" and "sft" in records
        else []
    )
    path.with_suffix(".json").write_text(
        json.dumps(
            {
                "targets": t.rows,
                "curve": curve,
                "by_difficulty": difficulty,
                "granularity": granularity,
                "against_baseline": baseline,
            },
            indent=2,
        )
        + "\n"
    )
    # The figure: SFT+GRPO against the other evaluated models, same conditions.
    from thinkbudget.plots import plot_accuracy_vs_budget

    curves, thinking = {}, {}
    for key, label in MODEL_NAMES.items():
        recs = records.get(key) or (
            list(load_records(run / "eval" / key / "samples.jsonl").values())
            if (run / "eval" / key / "samples.jsonl").is_file()
            else []
        )
        c = accuracy_curve(recs, syn, budgets)
        if c:
            curves[label] = c
            thinking[label] = thinking_of(c)
    if "forcing" in records:
        forced = [{**r, "method": "budget_prompt"} for r in records["forcing"] if r["task"] == syn]
        c = accuracy_curve(forced, syn, budgets)
        if c:
            curves["SFT + budget forcing"] = c
            thinking["SFT + budget forcing"] = thinking_of(c)
    plot_accuracy_vs_budget(
        curves, path.with_name("accuracy_vs_budget.png"), title=f"{syn}, held out", thinking=thinking
    )
    lines = [
        "# Thinking that pays: targets",
        "",
        f"Run folder `{run}`; {model_name} (`eval/{model}`) unless a target names another model. Generated by "
        "`scripts/proof_targets.py` from the result files: a target is reached when its 95 % interval clears "
        "the bar (Wilson intervals for rates, paired bootstrap over problems for differences and ratios).",
        "",
        f"## Accuracy against the thinking budget ({syn}, held out)",
        "",
        "| thinking | accuracy (95 % CI) | step from the previous row (paired, 95 % CI) | mean thinking tokens | "
        "within budget | right and within budget | result alone | arithmetic lines correct | "
        "answer = trace's last number |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in curve:
        step = diff_text(p["step"]) if p.get("step") else "–"
        lines.append(
            f"| {p['condition']} | {pct(p['accuracy'])} ({interval(*p['ci'])}), n = {p['n']} | {step} | "
            f"{p['mean_thinking_tokens']:.1f} | {pct(p['within_budget'])} | {pct(p['correct_within_budget'])} | "
            f"{pct(p['result_only'])} | {pct(p['step_correctness'])} | "
            f"{pct(p['answer_follows_trace'])} |"
        )
    lines += [
        "",
        f"## By difficulty: the problem's full-trace length ({syn}, {model_name})",
        "",
        "Each cell: accuracy / mean thinking tokens / share of traces that give the result alone (one line "
        "or none), n problems. A budget that decides the trace gives full traces wherever they fit it.",
        "",
    ]
    columns = list(dict.fromkeys(r["full_trace_tokens"] for r in difficulty))
    lines += ["| thinking | " + " | ".join(f"full trace {c} tokens" for c in columns) + " |"]
    lines += ["|---|" + "---|" * len(columns)]
    for cond in dict.fromkeys(r["condition"] for r in difficulty):
        cells = {r["full_trace_tokens"]: r for r in difficulty if r["condition"] == cond}
        lines.append(
            f"| {cond} | "
            + " | ".join(
                f"{pct(c['accuracy'])} / {c['mean_thinking_tokens']:.0f} / {pct(c['result_only'])}, n = {c['n']}"
                if (c := cells.get(col))
                else "–"
                for col in columns
            )
            + " |"
        )
    if granularity:
        plan = granularity[0]["plan_line"]
        lines += [
            "",
            f"## Does the budget decide the granularity? ({syn})",
            "",
            "Each sample's trace against the data stage's target for its problem at the stated budget (the "
            "finest granularity that fits, else the result alone"
            + (", traces opening with the problem's size" if plan else "")
            + "): share at the target's granularity, coarser, finer, or another shape; in brackets, the "
            "share of all samples that is both that and over budget. SFT: its own evaluation's problems.",
            "",
            "| model | budget | n | target | coarser | finer | other |"
            + (" size stated right | of those: at the target, over budget |" if plan else ""),
            "|---|---|---|---|---|---|---|" + ("---|---|" if plan else ""),
        ]
        for g in granularity:
            cells = " | ".join(
                f"{pct(g[k])} ({pct(g[k + '_over_budget'])})" for k in ("target", "coarser", "finer", "other")
            )
            size = (
                f" {pct(g['size_stated_right'])} | {pct(g['right_size_at_target'])}, "
                f"{pct(g['right_size_over_budget'])} |"
                if plan
                else ""
            )
            lines.append(f"| {g['model']} | {g['budget']} | {g['n']} | {cells} |{size}")
    if baseline:
        lines += [
            "",
            f"## Against the baseline run `{args.baseline}` (same problems, paired)",
            "",
            "This run minus the baseline: accuracy and within-budget rate, points, 95 % paired bootstrap interval.",
            "",
            "| thinking | accuracy | within budget |",
            "|---|---|---|",
        ]
        for row in baseline:
            within = row.get("within_budget")
            lines.append(
                f"| {row['condition']} | {diff_text(row['correct'])} | {diff_text(within) if within else '–'} |"
            )
    lines += ["", "## Targets", "", *t.table()]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {path}.md and {path}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
