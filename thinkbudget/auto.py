"""Auto mode's decision table: where thinking buys accuracy, measured rather than guessed.

Auto-mode SFT rows (:mod:`thinkbudget.data`, ``auto_ratio``) think on a problem only where thinking pays
for a model of this size. What pays is read from an evaluation of a model (typically the SFT model of a
previous run) under thinking off (``no_think``) and free thinking (``think``): its problems are grouped by
difficulty, the thinking tokens of the problem's full reference trace (``full_trace_tokens`` in
``samples.jsonl``), into bins with upper edges ``edges`` (tokens; the last bin is open), and a bin's
rows *think* when free thinking is more than ``margin`` more accurate than thinking off there.

    python scripts/auto_decisions.py --eval_dir runs/proof/eval/sft --output runs/proof/auto_decisions.json

The file (:func:`write_decisions`) holds, per task, each bin's ``max_full_trace_tokens`` (None for the
open bin), ``n`` problems, ``off_accuracy``, ``think_accuracy`` and ``think``. The data stage reads it with
:func:`load_decisions` and asks :func:`should_think` per problem.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_EDGES = (16, 32, 64, 128)
DEFAULT_MARGIN = 0.02  # a 2-point accuracy loss is what auto mode may cost (issue #21's target)
MEASURED_METHODS = ("no_think", "think")
COMMAND = "python scripts/auto_decisions.py --eval_dir <evaluation folder> --output <file>"


def check_edges(edges: Sequence[int]) -> list[int]:
    """Bin edges as a strictly increasing list of positive token counts, or ``ValueError``."""
    edges = list(edges)
    if not edges or any(isinstance(e, bool) or not isinstance(e, int) or e <= 0 for e in edges):
        raise ValueError(f"edges: must be positive whole numbers of tokens, got {edges}")
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"edges: must increase strictly, got {edges}")
    return edges


def bin_index(full_trace_tokens: int, edges: Sequence[int]) -> int:
    """The bin of a problem whose full trace needs ``full_trace_tokens``: the first edge it does not
    exceed, else the open bin (``len(edges)``)."""
    return next((i for i, e in enumerate(edges) if full_trace_tokens <= e), len(edges))


def measure_decisions(
    records: Iterable[dict[str, Any]], *, edges: Sequence[int] = DEFAULT_EDGES, margin: float = DEFAULT_MARGIN
) -> dict[str, list[dict[str, Any]]]:
    """Per task, per difficulty bin: problems, accuracy with thinking off and with free thinking (mean over
    problems of the share of correct samples) and the decision ``think`` (free thinking more than
    ``margin`` more accurate). Only tasks with both measured methods and reference traces are kept; a bin
    without problems of both methods is left out (``should_think`` then uses the nearest harder bin)."""
    edges = check_edges(edges)
    if not 0 <= margin < 1:
        raise ValueError(f"margin: must be an accuracy difference in [0, 1), got {margin}")
    # task -> method -> problem -> [correct, ...], and each problem's full-trace tokens
    correct: dict[str, dict[str, dict[str, list[bool]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    length: dict[tuple[str, str], int] = {}
    for r in records:
        if r.get("method") not in MEASURED_METHODS or r.get("full_trace_tokens") is None:
            continue
        correct[r["task"]][r["method"]][r["problem_id"]].append(bool(r["correct"]))
        length[r["task"], r["problem_id"]] = int(r["full_trace_tokens"])
    out: dict[str, list[dict[str, Any]]] = {}
    for task, by_method in sorted(correct.items()):
        if set(by_method) != set(MEASURED_METHODS):
            continue
        bins = []
        for i in range(len(edges) + 1):
            acc = {}
            for m in MEASURED_METHODS:
                rates = [
                    sum(c) / len(c)
                    for pid, c in by_method[m].items()
                    if bin_index(length[task, pid], edges) == i
                ]
                acc[m] = (sum(rates) / len(rates), len(rates)) if rates else None
            if acc["no_think"] is None or acc["think"] is None:
                continue
            off, think = acc["no_think"][0], acc["think"][0]
            bins.append(
                {
                    "max_full_trace_tokens": edges[i] if i < len(edges) else None,
                    "n": min(acc["no_think"][1], acc["think"][1]),
                    "off_accuracy": off,
                    "think_accuracy": think,
                    "think": think - off > margin,
                }
            )
        if bins:
            out[task] = bins
    return out


def write_decisions(
    path: str | os.PathLike,
    decisions: dict[str, list[dict[str, Any]]],
    *,
    source: str,
    edges: Sequence[int],
    margin: float,
) -> None:
    """The decision file the data stage reads (``auto_decisions``)."""
    payload = {"source": source, "edges": list(edges), "margin": margin, "tasks": decisions}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2) + "\n")


def load_decisions(path: str | os.PathLike, tasks: Sequence[str] = ()) -> dict[str, list[dict[str, Any]]]:
    """The per-task bins of a decision file, checked: ``ValueError`` naming the file and what is wrong
    (missing, not JSON, a bin without its fields, a task of ``tasks`` it does not cover)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(
            f"auto_decisions: {p} does not exist; measure it from an evaluation first:\n  {COMMAND}"
        )
    try:
        data = json.loads(p.read_text())
        by_task = data["tasks"]
        for task, bins in by_task.items():
            for b in bins:
                if not isinstance(b["think"], bool) or (
                    b["max_full_trace_tokens"] is not None and not isinstance(b["max_full_trace_tokens"], int)
                ):
                    raise TypeError(
                        f"task {task!r}: a bin's think must be true/false and its bound a whole number"
                    )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(
            f"auto_decisions: {p} is not a decision file ({type(e).__name__}: {e}); write it with:\n  {COMMAND}"
        ) from None
    missing = [t for t in tasks if t not in by_task]
    if missing:
        raise ValueError(
            f"auto_decisions: {p} has no decisions for task(s) {', '.join(missing)} (it covers "
            f"{', '.join(by_task) or 'none'}); evaluate a model on them with methods no_think and think, then:\n  {COMMAND}"
        )
    return by_task


def should_think(bins: Sequence[dict[str, Any]], full_trace_tokens: int) -> bool:
    """The decision for a problem whose full trace needs ``full_trace_tokens``: that of the first bin whose
    bound it does not exceed (the open bin, else the hardest measured bin, beyond the last bound)."""
    for b in bins:
        if b["max_full_trace_tokens"] is None or full_trace_tokens <= b["max_full_trace_tokens"]:
            return bool(b["think"])
    return bool(bins[-1]["think"])
