"""Figures and tables of evaluations: accuracy against tokens spent.

:func:`plot_accuracy_vs_tokens` draws one evaluation (``eval/evaluate.py``), :func:`write_training_curves`
the checkpoints of a training run (``eval/evaluate.py --run``), and :func:`overlay` /
:func:`overlay_table` several evaluations in one figure and one Markdown table (``eval/plot.py``).
matplotlib loads with this module: import it late where start-up time matters.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from thinkbudget import evaluation  # noqa: E402
from thinkbudget.evaluation import fmt, fmt_accuracy_ci  # noqa: E402

MARKERS = {
    "no_think": "s",
    "no_think_flag": "D",
    "budget_prompt": "o",
    "think": "*",
    "think_flag": "P",
    "budget_forcing": "^",
    "auto": "X",
    "auto_flag": "p",
    "auto_budget": "h",
}


def _budget_order(row: dict[str, Any]) -> tuple[int, int]:
    label = str(row.get("budget_label", row["budget"]))
    if label == evaluation.OFF:
        return (0, 0)
    if label == evaluation.NONE:
        return (2, 0)
    return (1, int(label))


def _row_order(row: dict[str, Any]) -> tuple:
    return (row["task"], evaluation.METHODS.index(row["method"]), _budget_order(row))


def _curves(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Rows grouped by (task, method), each sorted by budget."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(rows, key=_row_order):
        if r["accuracy"] is not None:
            out[(r["task"], r["method"])].append(r)
    return out


def _draw(
    ax: Any, rows: list[dict[str, Any]], label: str, color: Any, marker: str, x_key: str = "mean_total_tokens"
) -> None:
    xs = [r[x_key] for r in rows]
    ys = [100 * r["accuracy"] for r in rows]
    lo = [100 * (r["accuracy"] - r["accuracy_ci"][0]) if r["accuracy_ci"][0] is not None else 0 for r in rows]
    hi = [100 * (r["accuracy_ci"][1] - r["accuracy"]) if r["accuracy_ci"][1] is not None else 0 for r in rows]
    ax.errorbar(
        xs, ys, yerr=[lo, hi], label=label, color=color, marker=marker, capsize=2, linewidth=1.2, alpha=0.9
    )
    for x, y, r in zip(xs, ys, rows):
        ax.annotate(
            str(r.get("budget_label", r["budget"])),
            (x, y),
            textcoords="offset points",
            xytext=(3, 3),
            fontsize=7,
            color=color,
        )


def _panels(tasks: Sequence[str]) -> tuple[Any, list[Any]]:
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        ax.set_title(task)
        ax.set_xlabel("mean tokens per answer (thinking + answer)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    return fig, list(axes[0])


def _zoom_accuracy(axes: Sequence[Any]) -> None:
    """Accuracy axes from 0 to a little above the highest point drawn (at least 10 %, at most 100 %):
    a small model's accuracies would otherwise be a flat line at the bottom of 0-100 %."""
    for ax in axes:
        top = ax.get_ylim()[1]  # autoscaled to the points and their intervals
        ax.set_ylim(-1, min(103.0, max(10.0, 1.1 * top)))


def plot_accuracy_vs_tokens(results: dict[str, Any], path: str | Path) -> None:
    """One evaluation: accuracy vs mean tokens, one curve per method (points = budgets), 95% CIs.
    With several samples per problem, majority vote and best-of-N are drawn against the tokens all
    samples of a problem cost."""
    rows = results["rows"]
    tasks = sorted({r["task"] for r in rows})
    fig, axes = _panels(tasks)
    colors = plt.get_cmap("tab10")
    for ax, task in zip(axes, tasks):
        for (t, method), curve in _curves(rows).items():
            if t != task:
                continue
            color = colors(evaluation.METHODS.index(method))
            _draw(ax, curve, method, color, MARKERS[method])
            parallel = [r for r in curve if r.get("majority_accuracy") is not None]
            if parallel:
                xs = [r["mean_tokens_per_problem"] for r in parallel]
                ax.plot(
                    xs,
                    [100 * r["majority_accuracy"] for r in parallel],
                    "--",
                    color=color,
                    marker=MARKERS[method],
                    alpha=0.6,
                    label=f"{method} majority@{results['config'].get('samples')}",
                )
                ax.plot(
                    xs,
                    [100 * r["best_of_n_accuracy"] for r in parallel],
                    ":",
                    color=color,
                    marker=MARKERS[method],
                    alpha=0.6,
                    label=f"{method} best-of-{results['config'].get('samples')}",
                )
        ax.legend(fontsize=7)
    fig.suptitle(f"{results['model']}", fontsize=10)
    _zoom_accuracy(axes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def overlay(
    results_list: Sequence[dict[str, Any]], labels: Sequence[str], out: str | Path
) -> tuple[Path, Path]:
    """Several evaluations in one figure and one Markdown table; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = sorted({r["task"] for res in results_list for r in res["rows"]})
    fig, axes = _panels(tasks)
    colors = plt.get_cmap("tab10")
    for k, (res, label) in enumerate(zip(results_list, labels)):
        for (task, method), curve in _curves(res["rows"]).items():
            _draw(axes[tasks.index(task)], curve, f"{label}: {method}", colors(k % 10), MARKERS[method])
    for ax in axes:
        ax.legend(fontsize=6)
    _zoom_accuracy(axes)
    fig.tight_layout()
    png = out / "accuracy_vs_tokens.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    md = out / "results.md"
    md.write_text(overlay_table(results_list, labels))
    return png, md


def overlay_table(results_list: Sequence[dict[str, Any]], labels: Sequence[str]) -> str:
    """Markdown: provenance per evaluation, then one row per (task, method, budget, evaluation)."""
    lines = [
        "# Accuracy vs tokens",
        "",
        "| label | model | commit | device | backend | samples | max_new_tokens |",
        "|---|---|---|---|---|---|---|",
    ]
    for res, label in zip(results_list, labels):
        cfg = res.get("config", {})
        lines.append(
            f"| {label} | `{res['model']}` | `{str(res['commit'])[:12]}` | {res['device']} | {res['backend']} | "
            f"{cfg.get('samples')} | {cfg.get('max_new_tokens')} |"
        )
    lines += [
        "",
        "| task | method | budget | label | n | accuracy (95% CI) | mean thinking | mean answer | mean total | "
        "within budget | rel. error | no-think compl. | truncated |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [(r, i) for i, res in enumerate(results_list) for r in res["rows"]]
    for r, i in sorted(rows, key=lambda x: (_row_order(x[0]), x[1])):
        ci = fmt_accuracy_ci(r)
        lines.append(
            f"| {r['task']} | {r['method']} | {r.get('budget_label', r['budget'])} | {labels[i]} | {r['n']} | {ci} | "
            f"{fmt(r['mean_thinking_tokens'], 'tokens')} | {fmt(r['mean_answer_tokens'], 'tokens')} | "
            f"{fmt(r['mean_total_tokens'], 'tokens')} | {fmt(r['within_budget_rate'], 'pct')} | "
            f"{fmt(r['relative_length_error'], 'pct')} | {fmt(r['no_think_compliance'], 'pct')} | "
            f"{fmt(r['truncation_rate'], 'pct')} |"
        )
    return "\n".join(lines) + "\n"


def write_training_curves(points: Sequence[tuple[int, dict[str, Any]]], out: str | Path) -> None:
    """Accuracy and mean thinking tokens against training step, one line per (task, method, budget):
    training_curves.png, training_curves.json and training_curves.md in ``out``."""
    out = Path(out)
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for step, res in sorted(points, key=lambda p: p[0]):
        for r in sorted(res["rows"], key=_row_order):
            name = f"{r['task']} {r['method']} {r.get('budget_label', r['budget'])}"
            series[name].append(
                {
                    "step": step,
                    "accuracy": r["accuracy"],
                    "mean_thinking_tokens": r["mean_thinking_tokens"],
                    "within_budget_rate": r["within_budget_rate"],
                    "checkpoint": res["model"],
                }
            )
    fig, (ax_acc, ax_tok) = plt.subplots(1, 2, figsize=(13, 4.5))
    for name, pts in series.items():
        steps = [p["step"] for p in pts]
        ax_acc.plot(
            steps,
            [100 * p["accuracy"] if p["accuracy"] is not None else float("nan") for p in pts],
            marker="o",
            label=name,
        )
        ax_tok.plot(
            steps,
            [
                p["mean_thinking_tokens"] if p["mean_thinking_tokens"] is not None else float("nan")
                for p in pts
            ],
            marker="o",
            label=name,
        )
    ax_acc.set(xlabel="training step", ylabel="accuracy (%)", title="accuracy over training")
    ax_tok.set(xlabel="training step", ylabel="mean thinking tokens", title="thinking tokens over training")
    for ax in (ax_acc, ax_tok):
        ax.grid(alpha=0.3)
    ax_tok.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=120)
    plt.close(fig)
    (out / "training_curves.json").write_text(json.dumps(series, indent=2) + "\n")
    lines = [
        "# Over training",
        "",
        "| task method budget | step | accuracy | mean thinking tokens | within budget |",
        "|---|---|---|---|---|",
    ]
    for name, pts in series.items():
        for p in pts:
            lines.append(
                f"| {name} | {p['step']} | {fmt(p['accuracy'], 'pct')} | {fmt(p['mean_thinking_tokens'], 'tokens')} | "
                f"{fmt(p['within_budget_rate'], 'pct')} |"
            )
    (out / "training_curves.md").write_text("\n".join(lines) + "\n")


def default_labels(results_list: Sequence[dict[str, Any]], dirs: Sequence[str]) -> list[str]:
    """Model names (last path part); the folder name is added where two would read the same."""
    names = [Path(str(r["model"])).name or str(r["model"]) for r in results_list]
    return [f"{n} ({Path(d).name})" if names.count(n) > 1 else n for n, d in zip(names, dirs)]


def plot_accuracy_vs_budget(
    curves: dict[str, Sequence[dict[str, Any]]],
    path: str | Path,
    *,
    title: str = "",
    thinking: dict | None = None,
) -> None:
    """Accuracy against the thinking budget: one line per model over the conditions off -> each budget
    -> free (``scripts/proof_targets.py``'s curve points: ``condition``, ``accuracy``, ``ci``), with 95 %
    intervals; ``thinking`` (label -> condition -> mean thinking tokens) adds a second panel."""
    panels = 2 if thinking else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.0), squeeze=False)
    ax = axes[0][0]
    order: list[str] = []
    for curve in curves.values():
        for p in curve:
            if p["condition"] not in order:
                order.append(p["condition"])
    x_of = {c: i for i, c in enumerate(order)}
    for i, (label, curve) in enumerate(curves.items()):
        xs = [x_of[p["condition"]] + (i - (len(curves) - 1) / 2) * 0.06 for p in curve]
        ys = [100 * p["accuracy"] for p in curve]
        lo = [100 * (p["accuracy"] - p["ci"][0]) for p in curve]
        hi = [100 * (p["ci"][1] - p["accuracy"]) for p in curve]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=label)
    ax.set_xticks(range(len(order)), [c if c in ("off", "free") else f"{c} tokens" for c in order])
    ax.set_xlabel("thinking budget stated in the prompt")
    ax.set_ylabel("accuracy (%), 95 % interval")
    ax.set_title(title or "accuracy against the thinking budget")
    ax.grid(alpha=0.3)
    ax.legend()
    if thinking:
        ax2 = axes[0][1]
        for label, by_cond in thinking.items():
            xs = [x_of[c] for c in order if c in by_cond]
            ax2.plot(xs, [by_cond[c] for c in order if c in by_cond], marker="o", label=label)
        ax2.set_xticks(range(len(order)), order)
        ax2.set_xlabel("thinking budget stated in the prompt")
        ax2.set_ylabel("mean thinking tokens")
        ax2.set_title("thinking spent")
        ax2.grid(alpha=0.3)
        ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
