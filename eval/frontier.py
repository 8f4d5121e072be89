"""The compute frontier: accuracy against tokens spent per problem, over budget x samples x selector.

    python eval/frontier.py --eval_dirs results/eval/rl-parallel --scorer runs/scorer/smollm2-135m
    python eval/frontier.py --eval_dirs runs/x/eval/sft runs/x/eval/rl --labels SFT SFT+GRPO \
        --scorer runs/scorer/smollm2-135m --output results/frontier

Each folder is an evaluation with N samples per problem (``eval/evaluate.py --samples N``). For every
condition (thinking off, each budget, free thinking, forcing) and n = 1, 2, 4, ... <= N samples
(subsampled), each selector (majority vote, best-of-N by log-probability, by the trained scorer, the
scorer-weighted vote, and the oracle pass@N for reference) gets its accuracy and everything it spends
per problem: n x (thinking + answer) tokens plus the tokens the scorer reads (thinkbudget/frontier.py).

Writes into each folder: ``frontier.png`` (the points, the Pareto front marked), ``frontier.md`` (at a
few spend levels: a larger budget or more samples? then every point) and ``frontier.json``; with
several folders also the overlay (one front per checkpoint) into ``--output``. ``--scorer`` scores
each folder's samples once (cached per scorer in ``scorer_scores.jsonl``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from thinkbudget import evaluation, run_folders  # noqa: E402
from thinkbudget.frontier import (  # noqa: E402
    FrontierArguments,
    condition_label,
    frontier_analysis,
    frontier_markdown,
    frontier_points,
    mark_pareto,
    pairwise_accuracy,
    point_name,
)
from thinkbudget.selection import SELECTOR_LABELS  # noqa: E402

CONFIG_CLASSES = (FrontierArguments,)
SELECTOR_COLORS = {name: plt.get_cmap("tab10")(i) for i, name in enumerate(SELECTOR_LABELS)}
N_MARKERS = {1: "o", 2: "s", 4: "^", 8: "D", 16: "*", 32: "P", 64: "X"}


def _axes(tasks: Sequence[str]) -> tuple[Any, list[Any]]:
    fig, axes = plt.subplots(1, len(tasks), figsize=(7 * len(tasks), 5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        ax.set_title(task)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("mean tokens per problem (n x generated + scorer reads)")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    return fig, list(axes[0])


def _front_line(ax: Any, points: list[dict[str, Any]], color: Any, label: str) -> None:
    front = sorted((p for p in points if p["pareto"]), key=lambda p: p["mean_tokens_per_problem"])
    if front:
        ax.step(
            [max(p["mean_tokens_per_problem"], 1) for p in front],
            [100 * p["accuracy"] for p in front],
            where="post",
            color=color,
            linewidth=1.5,
            label=label,
        )


def plot_frontier(evaluations: Sequence[dict[str, Any]], path: str | Path) -> None:
    """One evaluation: every point (colour = selector, marker = n, annotated with its condition) and
    the Pareto front. Several: each evaluation's points faint and its front in its own colour."""
    tasks = sorted({p["task"] for ev in evaluations for p in ev["points"]})
    fig, axes = _axes(tasks)
    colors = plt.get_cmap("tab10")
    single = len(evaluations) == 1
    for k, ev in enumerate(evaluations):
        for ax, task in zip(axes, tasks):
            points = [p for p in ev["points"] if p["task"] == task]
            for p in points:
                color = SELECTOR_COLORS.get(p["selector"], "grey") if single else colors(k % 10)
                ax.scatter(
                    max(p["mean_tokens_per_problem"], 1),
                    100 * p["accuracy"],
                    marker=N_MARKERS.get(p["n"], "o"),
                    s=60 if p["pareto"] else 30,
                    facecolors="none" if p["reference"] else color,
                    edgecolors="black" if p["pareto"] else color,
                    alpha=0.9 if single or p["pareto"] else 0.25,
                )
                if single and (p["pareto"] or p["n"] == 1):
                    ax.annotate(
                        f"{condition_label(p['method'], p['budget_label'])} x{p['n']}",
                        (max(p["mean_tokens_per_problem"], 1), 100 * p["accuracy"]),
                        textcoords="offset points",
                        xytext=(3, 3),
                        fontsize=6,
                    )
            _front_line(ax, points, "black" if single else colors(k % 10), f"{ev['label']}: Pareto front")
    for ax, task in zip(axes, tasks):
        # Zoom to the points: a small model's accuracies would be a flat line at the bottom of 0-100 %.
        top = max(
            (100 * p["accuracy"] for ev in evaluations for p in ev["points"] if p["task"] == task), default=0
        )
        ax.set_ylim(-1, min(103, max(10.0, 1.25 * top + 2)))
    for ax in axes:
        if single:  # legend entries for the colours (selectors) and markers (samples) in use
            used = {(p["selector"], p["n"]) for p in evaluations[0]["points"]}
            for name, text in SELECTOR_LABELS.items():
                if any(s == name for s, _ in used):
                    ax.scatter([], [], color=SELECTOR_COLORS[name], label=text)
            for n in sorted({n for _, n in used}):
                ax.scatter([], [], color="grey", marker=N_MARKERS.get(n, "o"), label=f"n = {n}")
        ax.legend(fontsize=6, loc="best")
    fig.suptitle("accuracy vs tokens per problem: budget x samples x selector", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(evaluations: Sequence[dict[str, Any]], out: Path, args: FrontierArguments) -> None:
    """frontier.json, frontier.md and frontier.png of ``evaluations`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    run_folders.write_json_atomic(
        out / "frontier.json",
        {
            "command": run_folders.command_line(),
            "commit": run_folders.git_commit(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "evaluations": [
                {
                    "label": ev["label"],
                    "dir": ev["dir"],
                    "scorer": ev["scorer"],
                    "model": ev["results"].get("model"),
                }
                for ev in evaluations
            ],
            "scorer_against_others": [
                {"label": ev["label"], **d} for ev in evaluations for d in ev["analysis"]["comparisons"]
            ],
            "scorer_pairwise": [
                {"label": ev["label"], **ev["pairwise"]} for ev in evaluations if ev.get("pairwise")
            ],
            "logprob_pairwise": [
                {"label": ev["label"], **ev["logprob_pairwise"]}
                for ev in evaluations
                if ev.get("logprob_pairwise")
            ],
            "gap_closed": [{"label": ev["label"], **g} for ev in evaluations for g in ev["analysis"]["gaps"]],
            "spend_table": [
                {
                    "label": ev["label"],
                    "task": row["task"],
                    "spend": row["spend"],
                    "single": point_name(row["single"]) if row["single"] else None,
                    "single_accuracy": row["single"]["accuracy"] if row["single"] else None,
                    "several": point_name(row["several"]) if row["several"] else None,
                    "several_accuracy": row["several"]["accuracy"] if row["several"] else None,
                    "difference": row["difference"],
                    "winner": row["winner"],
                }
                for ev in evaluations
                for row in ev["analysis"]["spend"]
            ],
            "points": [{"label": ev["label"], **p} for ev in evaluations for p in ev["points"]],
        },
    )
    (out / "frontier.md").write_text(frontier_markdown(evaluations))
    plot_frontier(evaluations, out / "frontier.png")


def main(args: FrontierArguments) -> list[dict[str, Any]]:
    if not args.eval_dirs:
        raise SystemExit("frontier.py: error: --eval_dirs names no evaluation folder")
    if len(args.eval_dirs) > 1 and not args.output:
        raise SystemExit("frontier.py: error: several --eval_dirs need --output for the overlay")
    if args.scorer and not Path(args.scorer).is_dir():
        raise SystemExit(
            f"frontier.py: error: --scorer {args.scorer} is not a folder (train/scorer.py writes one)"
        )
    evaluations = []
    for k, d in enumerate(args.eval_dirs):
        try:
            results = evaluation.load_results(d)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"frontier.py: error: {e}") from None
        records = list(evaluation.load_records(Path(d) / "samples.jsonl").values())
        if not records:
            raise SystemExit(f"frontier.py: error: {d}/samples.jsonl holds no samples")
        if args.scorer:
            from thinkbudget.scorer import attach_scores

            try:
                attach_scores(
                    d, records, args.scorer, batch_size=args.scorer_batch_size, dtype=args.scorer_dtype
                )
            except ValueError as e:
                raise SystemExit(f"frontier.py: error: {e}") from None
        points = mark_pareto(
            frontier_points(records, ns=args.samples_grid, ci_resamples=args.ci_resamples, seed=args.seed)
        )
        label = args.labels[k] if args.labels else Path(str(results["model"])).name or str(results["model"])
        pairwise = pairwise_accuracy(records, ci_resamples=args.ci_resamples, seed=args.seed)
        # The policy's own mean log-probability on the same pairs: what a trained scorer has to beat.
        logprob = pairwise_accuracy(
            records, score="mean_logprob", ci_resamples=args.ci_resamples, seed=args.seed
        )
        ev = {
            "label": label,
            "dir": str(d),
            "scorer": args.scorer,
            "results": results,
            "points": points,
            "analysis": frontier_analysis(
                points, args.spend_levels, ci_resamples=args.ci_resamples, seed=args.seed
            ),
            "pairwise": pairwise,
            "logprob_pairwise": logprob,
        }
        write_outputs([ev], Path(d), args)
        evaluations.append(ev)
        print(f"wrote {d}/frontier.png, frontier.md, frontier.json", file=sys.stderr)
    names = [ev["label"] for ev in evaluations]
    for ev in evaluations:  # two folders of one model: the folder name tells them apart
        if not args.labels and names.count(ev["label"]) > 1:
            ev["label"] = f"{ev['label']} ({Path(ev['dir']).name})"
    if args.output:
        write_outputs(evaluations, Path(args.output), args)
        print(f"wrote the overlay {args.output}/frontier.png, frontier.md, frontier.json", file=sys.stderr)
    return evaluations


if __name__ == "__main__":
    run_folders.setup_logging()
    try:
        (frontier_args,) = run_folders.parse_config(CONFIG_CLASSES)
    except ValueError as e:
        raise SystemExit(f"frontier.py: error: {e}") from None
    main(frontier_args)
