"""The proof's GRPO rows plus one budget-32 row for every chain problem whose full trace has 40 to MAX
tokens (default 60: 5-7 steps; 47: 5 steps only): the problems where the proof's GRPO wrote a terse trace one
line too long at 32. The SFT target there is the result alone (target_lines 0); the added rows let
soft_overlong act where the drift happens.

    python results/grpo-kl-experiment-cpu-smollm2-135m/boundary32/boundary_rows.py SRC DST [MAX]
SRC: a data/prepare.py folder (its rl/train and rl/test); DST: a folder train/rl.py reads as --dataset_path.
"""

import sys
from pathlib import Path

from datasets import concatenate_datasets, load_from_disk
from transformers import AutoTokenizer

from thinkbudget.data import RowPlan, render_row_prompt
from thinkbudget.models import resolve_model_path


def main(src: str, dst: str, longest: int = 60) -> None:
    train = load_from_disk(f"{src}/rl/train")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("smollm2-135m"))
    plan = RowPlan("think", "kwargs", 32)
    picked = train.filter(
        lambda r: (
            r["task"] == "chain"
            and r["full_trace_tokens"] is not None
            and 40 <= r["full_trace_tokens"] <= longest
        )
    )
    extra = picked.map(
        lambda r: {
            "prompt": render_row_prompt(tokenizer, r["question"], plan),
            "mode": "think",
            "control": "kwargs",
            "budget": 32,
            "target_lines": 0,
            "id": r["id"] + "#boundary32",
        }
    )
    rows = concatenate_datasets([train, extra]).shuffle(seed=0)
    Path(dst, "rl").mkdir(parents=True, exist_ok=True)
    rows.save_to_disk(f"{dst}/rl/train")
    load_from_disk(f"{src}/rl/test").save_to_disk(f"{dst}/rl/test")
    print(len(train), "+", len(extra), "boundary rows at 32 ->", len(rows), "rows")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:4]))
