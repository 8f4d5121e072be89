"""The experiment's GRPO rows: the proof's RL rows where the stated budget binds (the problem's full trace
is longer than the budget, so the SFT target is a coarser trace), half of them at budget 128.

    python results/grpo-binding-budget-experiment-cpu-smollm2-135m/binding_rows.py SRC DST
SRC: a data/prepare.py folder (its rl/train and rl/test); DST: a folder train/rl.py reads as --dataset_path.
"""

import random
import sys
from pathlib import Path

from datasets import load_from_disk


def main(src: str, dst: str) -> None:
    train = load_from_disk(f"{src}/rl/train")
    binding = {
        b: [
            i
            for i, (budget, full) in enumerate(zip(train["budget"], train["full_trace_tokens"]))
            if budget == b and full is not None and full > b
        ]
        for b in (32, 64, 128)
    }
    rng = random.Random(0)
    n128 = len(binding[128])
    rows = binding[128] + rng.sample(binding[64], n128 // 2) + rng.sample(binding[32], n128 // 2)
    rng.shuffle(rows)
    Path(dst, "rl").mkdir(parents=True, exist_ok=True)
    train.select(rows).save_to_disk(f"{dst}/rl/train")
    load_from_disk(f"{src}/rl/test").save_to_disk(f"{dst}/rl/test")
    print({b: len(v) for b, v in binding.items()}, "->", len(rows), "rows")


if __name__ == "__main__":
    main(*sys.argv[1:3])
