"""Build the SFT and RL datasets of a data mix once and write them to disk.

    python data/prepare.py --config configs/data/default.yaml [--output_dir data/prepared/default]

Writes ``sft/{train,test}`` and ``rl/{train,test}`` (``datasets.save_to_disk``), ``manifest.json``
(the config, row counts per task/mode/control/budget, trace-length statistics, commit) and
``preview.jsonl`` (a few rendered rows to read). The trainers read only such a folder (their
``dataset_path``): the mix is decided here, once. The output is a pure function of the config
(same seed, same datasets).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from statistics import mean

if __name__ == "__main__":
    from thinkbudget.run_folders import die_with_parent as _die_with_parent

    _die_with_parent()  # before the slow imports (see thinkbudget.run_folders.die_with_parent)

from thinkbudget.data import (  # noqa: E402
    CONFIG_CLASSES,
    DataMixArguments,
    PrepareArguments,
    build_rl_dataset,
    build_sft_dataset,
)
from thinkbudget.protocol import THINK_CLOSE  # noqa: E402
from thinkbudget.run_folders import (  # noqa: E402
    check_creatable,
    command_line,
    git_commit,
    make_dir,
    run_entry_point,
    write_json_atomic,
)

logger = logging.getLogger("prepare")


def check_targets(ds) -> dict:
    """Re-check every SFT think target (thinkbudget.traces): its arithmetic lines are all correct and its
    boxed answer is the trace's last number. A failure is a bug in a task's trace generator: the stage
    stops rather than teach it."""
    from thinkbudget.data import trace_is_sound
    from thinkbudget.grading import extract_final_answer
    from thinkbudget.traces import check_lines, is_number, same_number, thinking_between_tags

    rows = lines = correct = follows = numeric = 0
    for completion, mode, gran in zip(ds["completion"], ds["mode"], ds["granularity"]):
        if mode not in ("think", "auto") or gran == "none":  # auto rows that answer directly have no trace
            continue
        thinking = thinking_between_tags(completion)
        check = check_lines(thinking)
        answer = extract_final_answer(completion.rsplit(THINK_CLOSE, 1)[-1])
        rows, lines, correct = rows + 1, lines + check.lines, correct + check.correct
        if is_number(answer):
            numeric += 1
            follows += same_number(check.result, answer)
        if not trace_is_sound(thinking, answer or ""):
            raise SystemExit(
                f"data stage: an SFT target fails its own check (a trace generator bug):\n{completion}"
            )
    return {
        "think_rows": rows,
        "arithmetic_lines": lines,
        "lines_correct": correct,
        "numeric_answers": numeric,
        "answers_follow_trace": follows,
    }


def summarize(ds, kind: str) -> dict:
    """Row counts by task, mode, control and budget, and the thinking-token lengths of SFT targets."""
    budget = ["none" if b is None else str(b) for b in ds["budget"]]
    summary = {
        "rows": len(ds),
        "by_task": dict(sorted(Counter(ds["task"]).items())),
        "by_mode": dict(sorted(Counter(ds["mode"]).items())),
        "by_control": dict(sorted(Counter(ds["control"]).items())),
        "by_budget": dict(sorted(Counter(budget).items())),
        "by_task_mode_budget": dict(
            sorted(Counter(f"{t}|{m}|{b}" for t, m, b in zip(ds["task"], ds["mode"], budget)).items())
        ),
    }
    if kind == "sft":
        summary["by_granularity"] = dict(sorted(Counter(ds["granularity"]).items()))
        # How coarse the reasoning gets under each budget: share of think rows at each granularity.
        by_budget_gran: dict[str, Counter] = {}
        for t, b, g, m in zip(ds["task"], budget, ds["granularity"], ds["mode"]):
            if m == "think":
                by_budget_gran.setdefault(f"{t}|{b}", Counter())[g] += 1
        summary["target_checks"] = check_targets(ds)
        summary["granularity_share_by_task_budget"] = {
            k: {g: round(c / sum(v.values()), 3) for g, c in sorted(v.items())}
            for k, v in sorted(by_budget_gran.items())
        }
        by_budget: dict[str, list[int]] = {}
        for b, n, m in zip(budget, ds["thinking_tokens"], ds["mode"]):
            if m == "think":
                by_budget.setdefault(b, []).append(n)
        # Auto rows: the share whose target thinks, per task and budget (the measured decisions at work).
        by_auto: dict[str, list[bool]] = {}
        for t, b, n, m in zip(ds["task"], budget, ds["thinking_tokens"], ds["mode"]):
            if m == "auto":
                by_auto.setdefault(f"{t}|{b}", []).append(n > 0)
        if by_auto:
            summary["auto_think_share_by_task_budget"] = {
                k: round(sum(v) / len(v), 3) for k, v in sorted(by_auto.items())
            }
        summary["thinking_tokens_by_budget"] = {
            b: {"mean": round(mean(v), 1), "max": max(v), "answer_only": sum(x == 0 for x in v)}
            for b, v in sorted(by_budget.items())
        }
    return summary


def main(script_args: PrepareArguments, data_args: DataMixArguments) -> Path:
    out = Path(script_args.output_dir)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"output_dir {out} is a file, not a folder")
    if out.exists() and any(out.iterdir()) and not script_args.overwrite_output_dir:
        raise SystemExit(f"output_dir {out} is not empty; pass --overwrite_output_dir true to replace it")
    check_creatable(out, what="output_dir")

    from thinkbudget.models import load_tokenizer, resolve_model_path

    # Every check and the tokenizer come first; the folder is written only when there is data for it.
    try:
        tokenizer = load_tokenizer(resolve_model_path(script_args.model_name_or_path))
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"model_name_or_path: {e}") from None
    start = time.time()
    summaries, preview, built = {}, [], {}
    try:
        for kind, build in (("sft", build_sft_dataset), ("rl", build_rl_dataset)):
            for split in ("train", "test"):
                built[kind, split] = build(data_args, tokenizer, split)
    except (ValueError, FileNotFoundError) as e:  # a malformed task file: its message, not a traceback
        raise SystemExit(f"invalid data: {e}") from None
    empty = [f"{kind}/train" for (kind, split), ds in built.items() if split == "train" and len(ds) == 0]
    if empty:
        raise SystemExit(
            f"the data mix produced no rows for {', '.join(empty)} (num_train_problems = 0, or an empty task file?)"
        )
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out)  # --overwrite_output_dir true (checked above)
    make_dir(out, what="output_dir")
    for (kind, split), ds in built.items():
        ds.save_to_disk(str(out / kind / split))
        summaries[f"{kind}/{split}"] = summarize(ds, kind)
        logger.info("%s/%s: %d rows", kind, split, len(ds))
        if split == "train":
            preview += [
                {"kind": kind, **row} for row in ds.select(range(min(script_args.preview_rows, len(ds))))
            ]

    with (out / "preview.jsonl").open("w") as f:
        for row in preview:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    write_json_atomic(
        out / "manifest.json",
        {
            "config": {"script": asdict(script_args), "data": asdict(data_args)},
            "datasets": summaries,
            "commit": git_commit(),
            "command": command_line(),
            "build_seconds": round(time.time() - start, 1),
        },
    )
    logger.info("wrote %s", out)
    return out


def cli(argv: list[str] | None = None) -> Path:
    """Parse ``argv`` (default: the command line) and run :func:`main`; bad input exits with a message."""
    return run_entry_point(main, CONFIG_CLASSES, argv)


if __name__ == "__main__":
    cli()
