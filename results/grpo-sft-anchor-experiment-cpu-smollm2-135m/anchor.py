"""The proof's GRPO with an SFT anchor (InstructGPT's PPO-ptx, with the SFT rows instead of pretraining data):
every micro-batch's GRPO loss gets ANCHOR_WEIGHT x the mean next-token loss of ANCHOR_ROWS SFT rows (their
completions only), drawn in turn from <dataset_path>/sft/train. A KL term acts only on sampled tokens; this
holds the SFT targets' decisions (at 32: the result alone on 5-step problems) whatever the rollouts sample.

    ANCHOR_WEIGHT=1.0 python results/grpo-sft-anchor-experiment-cpu-smollm2-135m/anchor.py <train/rl.py flags>

An experiment, not a recipe: it runs train/rl.py's main with its trainer class replaced by the one below.
"""

import os
import random
import sys
from pathlib import Path

import torch
from datasets import load_from_disk

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import train.rl as entry  # noqa: E402  (train/ is not a package: found through the repository root)

WEIGHT = float(os.environ.get("ANCHOR_WEIGHT", "1.0"))
ROWS = int(os.environ.get("ANCHOR_ROWS", "4"))


class AnchoredTrainer(entry.ThinkBudgetGRPOTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = Path(DATASET) / "sft" / "train"
        sft = load_from_disk(str(path))
        tok = self.processing_class
        self._anchor = []
        for r in sft:
            p = tok(r["prompt"], add_special_tokens=False)["input_ids"]
            c = tok(r["completion"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
            self._anchor.append((p, c))
        random.Random(0).shuffle(self._anchor)
        self._anchor_at = 0
        print(f"anchor: {len(self._anchor)} SFT rows from {path}, weight {WEIGHT}, {ROWS} rows a micro-batch")

    def _anchor_loss(self, model):
        rows = [self._anchor[(self._anchor_at + i) % len(self._anchor)] for i in range(ROWS)]
        self._anchor_at += ROWS
        width = max(len(p) + len(c) for p, c in rows)
        pad = self.processing_class.pad_token_id or 0
        ids = torch.full((ROWS, width), pad, dtype=torch.long)
        labels = torch.full((ROWS, width), -100, dtype=torch.long)
        mask = torch.zeros((ROWS, width), dtype=torch.long)
        for i, (p, c) in enumerate(rows):
            seq = p + c
            ids[i, : len(seq)] = torch.tensor(seq)
            labels[i, len(p) : len(seq)] = torch.tensor(c)
            mask[i, : len(seq)] = 1
        device = next(model.parameters()).device
        # TRL's fused LM head (the path GRPO's own loss takes): the plain forward with labels was 3-8x slower here.
        out = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            labels=labels.to(device),
            fused_lm_head=True,
        )
        return out.loss

    def _compute_loss(self, model, inputs):
        loss = super()._compute_loss(model, inputs)
        if model.training and WEIGHT > 0:
            anchor = self._anchor_loss(model)
            self._metrics["train"]["anchor/sft_loss"].append(anchor.item())
            loss = loss + WEIGHT * anchor
        return loss


def main() -> None:
    global DATASET
    argv = sys.argv[1:]
    DATASET = argv[argv.index("--dataset_path") + 1]
    entry.ThinkBudgetGRPOTrainer = AnchoredTrainer
    entry.cli(argv)


DATASET = ""
if __name__ == "__main__":
    main()
