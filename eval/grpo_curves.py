"""Training curves of a GRPO run: reward, within-budget share and thinking tokens per budget, per step.

    python eval/grpo_curves.py runs/main-cpu-proof/rl --output results/cpu-proof-smollm2-135m/grpo

Reads ``trainer_state.json`` (the run folder's, else its newest ``checkpoint-N``'s) and writes
``grpo_curves.png`` (four panels: total reward and each reward's mean; thinking tokens per budget;
within-budget share per budget; accuracy and no-think compliance; then, where the run logged them, the
share of rollouts at their target's granularity per budget, and auto mode's decision: the policy's
probability of thinking overall and per difficulty bin, ``auto/p_think``) and ``grpo_curves.md`` (the same
numbers, one row per logged step), so that the length signal the rewards give is there to see.
The metric names are the ones ``thinkbudget.rl.rollout_metrics`` logs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BUDGET_KEY = re.compile(r"^thinkbudget/budget_(\d+)/(thinking_tokens|within_budget|accuracy)$")


def load_log_history(run: str | Path) -> list[dict[str, Any]]:
    """The logged training steps of a run folder (entries with a ``reward``)."""
    run = Path(run)
    candidates = [run / "trainer_state.json"] + sorted(
        run.glob("checkpoint-*/trainer_state.json"),
        key=lambda p: int(p.parent.name.split("-")[-1]),
        reverse=True,
    )
    for path in candidates:
        if path.is_file():
            history = json.loads(path.read_text()).get("log_history", [])
            return [h for h in history if "reward" in h and "step" in h]
    raise FileNotFoundError(
        f"{run}: no trainer_state.json (a finished run or a checkpoint-N folder holds one)"
    )


def budgets_in(history: Sequence[dict[str, Any]]) -> list[int]:
    return sorted({int(m.group(1)) for h in history for k in h if (m := BUDGET_KEY.match(k))})


def series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(h["step"], h[key]) for h in history if isinstance(h.get(key), int | float)]
    return [p[0] for p in pts], [p[1] for p in pts]


def write_grpo_curves(run: str | Path, out: str | Path) -> tuple[Path, Path]:
    history = load_log_history(run)
    if not history:
        raise ValueError(f"{run}: the run logged no training step")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    budgets = budgets_in(history)
    reward_keys = sorted({k for h in history for k in h if k.startswith("rewards/") and k.endswith("/mean")})
    shape_keys = [f"thinkbudget/budget_{b}/at_target" for b in budgets] + ["thinkbudget/no_budget/at_target"]
    shape_keys = [k for k in shape_keys if any(k in h for h in history)]  # runs since the granularity reward
    # Auto rows (thinkbudget.decision): overall first, then the difficulty bins in their order (le16 ... gt128).
    auto_keys = sorted(
        {k for h in history for k in h if k.startswith("auto/p_think")},
        key=lambda k: (k != "auto/p_think", "gt" in k, int(re.sub(r"\D", "", k) or 0)),
    )
    extra = [keys for keys in (shape_keys, auto_keys) if keys]
    fig, axes = plt.subplots(1, 4 + len(extra), figsize=(20 + 5 * len(extra), 4.2))
    ax = axes[0]
    ax.plot(*series(history, "reward"), color="black", lw=2, label="total (weighted)")
    for k in reward_keys:
        ax.plot(*series(history, k), lw=1, label=k.split("/")[1])
    ax.set_title("reward (group mean)")
    ax.legend(fontsize=7)
    for b in budgets:
        axes[1].plot(
            *series(history, f"thinkbudget/budget_{b}/thinking_tokens"), marker=".", label=f"budget {b}"
        )
        axes[1].axhline(b, ls=":", lw=0.8, color=axes[1].lines[-1].get_color())
        axes[2].plot(
            *series(history, f"thinkbudget/budget_{b}/within_budget"), marker=".", label=f"budget {b}"
        )
    axes[1].plot(*series(history, "thinkbudget/no_budget/thinking_tokens"), marker=".", label="no budget")
    axes[1].set_title("mean thinking tokens (dotted: the budget)")
    axes[2].set_title("within-budget share")
    axes[2].set_ylim(-0.02, 1.02)
    axes[3].plot(*series(history, "thinkbudget/accuracy"), marker=".", label="accuracy")
    axes[3].plot(*series(history, "thinkbudget/no_think/compliance"), marker=".", label="no-think compliance")
    axes[3].set_title("rollout accuracy and no-think compliance")
    axes[3].set_ylim(-0.02, 1.02)
    panel = 4
    for k in shape_keys:
        label = "no budget" if "no_budget" in k else f"budget {k.split('/')[1].split('_')[1]}"
        axes[panel].plot(*series(history, k), marker=".", label=label)
    if shape_keys:
        axes[panel].set_title("share at the target's granularity")
        axes[panel].set_ylim(-0.02, 1.02)
        panel += 1
    for k in auto_keys:
        label = "all auto prompts" if k == "auto/p_think" else f"full trace {k.split('/')[-1]} tokens"
        axes[panel].plot(*series(history, k), marker=".", lw=2 if k == "auto/p_think" else 1, label=label)
    if auto_keys:
        axes[panel].set_title("auto: the policy's P(think) by difficulty")
        axes[panel].set_ylim(-0.02, 1.02)
    for a in axes[1:]:
        a.legend(fontsize=7)
    for a in axes:
        a.set_xlabel("optimizer step")
    fig.tight_layout()
    png = out / "grpo_curves.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)

    cols = ["step", "reward", "reward_std"] + [
        f"thinkbudget/budget_{b}/{m}" for b in budgets for m in ("thinking_tokens", "within_budget")
    ]
    cols += [
        "thinkbudget/no_budget/thinking_tokens",
        "thinkbudget/accuracy",
        "thinkbudget/no_think/compliance",
    ]
    cols += shape_keys + auto_keys + reward_keys
    short = [c.replace("thinkbudget/", "").replace("/mean", "") for c in cols]
    lines = [
        f"# GRPO training curves: `{run}`",
        "",
        "One row per logged optimizer step (means over that step's rollouts).",
        "",
        "| " + " | ".join(short) + " |",
        "|" + "---|" * len(cols),
    ]
    for h in history:
        cells = [h.get(c) for c in cols]
        lines.append("| " + " | ".join("" if v is None else f"{v:.3g}" for v in cells) + " |")
    md = out / "grpo_curves.md"
    md.write_text("\n".join(lines) + "\n")
    return png, md


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="GRPO output folder (or one of its checkpoint-N folders)")
    parser.add_argument("--output", required=True, help="folder for grpo_curves.png and grpo_curves.md")
    args = parser.parse_args(argv)
    try:
        png, md = write_grpo_curves(args.run, args.output)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"grpo_curves.py: error: {e}") from None
    print(f"wrote {png} and {md}", file=sys.stderr)


if __name__ == "__main__":
    main()
