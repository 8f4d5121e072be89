"""Measure where thinking pays, per task and difficulty: the decision table of auto-mode SFT rows.

    python scripts/auto_decisions.py --eval_dir runs/proof/eval/sft --output runs/proof/auto_decisions.json

Reads an evaluation folder's ``samples.jsonl`` (it must hold methods ``no_think`` and ``think``), groups
its problems by the thinking tokens of their full reference trace (bins with upper ``--edges``, tokens;
the last bin is open) and writes, per task and bin, the accuracy with thinking off and with free thinking
and the decision: think where free thinking is more than ``--margin`` more accurate
(:mod:`thinkbudget.auto`). The data stage reads the file as ``auto_decisions``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from thinkbudget import auto


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval_dir", required=True, help="Evaluation folder with samples.jsonl (path).")
    parser.add_argument("--output", required=True, help="Decision file to write (path, JSON).")
    parser.add_argument(
        "--edges",
        default=",".join(map(str, auto.DEFAULT_EDGES)),
        help="Upper bounds of the difficulty bins (full-trace thinking tokens, comma-separated).",
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=auto.DEFAULT_MARGIN,
        help="Accuracy gain (0-1) that thinking must exceed in a bin for its rows to think.",
    )
    args = parser.parse_args(argv)
    samples = Path(args.eval_dir) / "samples.jsonl"
    try:
        edges = auto.check_edges([int(e) for e in args.edges.split(",") if e.strip()])
        if not samples.is_file():
            raise ValueError(f"--eval_dir: {samples} does not exist (not an evaluation folder?)")
        records = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
        decisions = auto.measure_decisions(records, edges=edges, margin=args.margin)
        if not decisions:
            raise ValueError(
                f"--eval_dir: {samples} holds no task evaluated with both methods no_think and think on "
                "problems with reference traces"
            )
    except ValueError as e:
        sys.exit(f"auto_decisions.py: error: {e}")
    auto.write_decisions(args.output, decisions, source=str(args.eval_dir), edges=edges, margin=args.margin)
    for task, bins in decisions.items():
        for b in bins:
            bound = b["max_full_trace_tokens"]
            print(
                f"{task:8s} full trace {'<= ' + str(bound) if bound else '> ' + str(edges[-1]):>8s} tokens: "
                f"n {b['n']:4d}, off {100 * b['off_accuracy']:5.1f} %, think {100 * b['think_accuracy']:5.1f} % "
                f"-> {'think' if b['think'] else 'answer directly'}"
            )
    print(f"wrote {args.output}")
    return decisions


if __name__ == "__main__":
    main()
