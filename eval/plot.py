"""Figures and tables of evaluations: accuracy against tokens spent.

    python eval/plot.py results/eval/base results/eval/sft results/eval/rl --labels base SFT RL --output results/report

Overlays several evaluation folders (each holding a results.json from eval/evaluate.py) in one figure,
``accuracy_vs_tokens.png`` (one panel per task; colour = evaluation, marker = method, points along a
curve = budgets), and one Markdown table, ``results.md``. Labels default to the model names.
The figure functions live in thinkbudget/plots.py (eval/evaluate.py draws with them too).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from thinkbudget import evaluation
from thinkbudget.plots import default_labels, overlay


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dirs", nargs="+", help="evaluation folders (each with a results.json)")
    parser.add_argument("--labels", nargs="+", help="one label per folder (default: the model names)")
    parser.add_argument("--output", required=True, help="folder for accuracy_vs_tokens.png and results.md")
    args = parser.parse_args(argv)
    try:
        results_list = [evaluation.load_results(d) for d in args.dirs]
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"plot.py: error: {e}") from None
    if args.labels and len(args.labels) != len(args.dirs):
        raise SystemExit(f"plot.py: error: {len(args.labels)} labels for {len(args.dirs)} folders")
    labels = args.labels or default_labels(results_list, args.dirs)
    png, md = overlay(results_list, labels, args.output)
    print(f"wrote {png} and {md}", file=sys.stderr)


if __name__ == "__main__":
    main()
