"""The policy's probability of the empty block at an auto prompt: P(decision token of the empty block |
auto prompt + <think>), over held-out chain problems, for each model given.

    python results/auto-grpo-experiment-cpu-smollm2-135m/p_empty.py runs/proof-v9/rl runs/auto-grpo/rl
"""

from __future__ import annotations

import json
import sys

import torch

from thinkbudget.decision import decision_tokens
from thinkbudget.models import load_model_and_tokenizer
from thinkbudget.protocol import THINK_OPEN, build_messages, render_prompt
from thinkbudget.tasks import load_problems

problems = load_problems("chain", "test", n=50, seed=0)
out = {}
for path in sys.argv[1:]:
    model, tok = load_model_and_tokenizer(path, dtype="float32")
    empty = decision_tokens(tok).no_think[-1]
    probs = []
    with torch.no_grad():
        for p in problems:
            text = render_prompt(tok, build_messages(p.question), enable_thinking="auto") + THINK_OPEN
            ids = torch.tensor([tok.encode(text, add_special_tokens=False)])
            probs.append(torch.softmax(model(input_ids=ids).logits[0, -1].float(), -1)[empty].item())
    out[path] = {"problems": len(probs), "mean": sum(probs) / len(probs), "max": max(probs)}
print(json.dumps(out, indent=2))
