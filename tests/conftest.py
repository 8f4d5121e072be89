"""Shared fixtures: the real default tokenizer and a tiny locally built model.

Both come from ``thinkbudget.models`` aliases, cached under ``$THINKBUDGET_CACHE`` (the first
session converts the embedded GGUF once). Nothing here downloads anything.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tokenizer():
    """SmolLM2's real tokenizer with the think tokens and the protocol's chat template."""
    from thinkbudget.models import load_tokenizer

    return load_tokenizer("tiny-llama")


@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    """Path of the 2-layer Llama checkpoint (real tokenizer) used by trainer smoke tests."""
    from thinkbudget.models import embedded_checkpoint

    return str(embedded_checkpoint("tiny-llama"))


@pytest.fixture()
def tiny_model(tiny_model_path):
    from thinkbudget.models import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(tiny_model_path, dtype="float32")
    return model


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory) -> str:
    """configs/data/smoke.yaml prepared once per session (data/prepare.py, in process): the folder the
    smoke recipes name as dataset_path (data/prepared/smoke), for tests to pass as --dataset_path."""
    import importlib.util

    from thinkbudget.run_folders import parse_config

    spec = importlib.util.spec_from_file_location("_prepare_entry", ROOT / "data" / "prepare.py")
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    out = tmp_path_factory.mktemp("prepared") / "smoke"
    configs = parse_config(
        prepare.CONFIG_CLASSES, ["--config", str(ROOT / "configs/data/smoke.yaml"), "--output_dir", str(out)]
    )
    return str(prepare.main(*configs))


@pytest.fixture(scope="session")
def varied_model_path(tmp_path_factory, tiny_model_path) -> str:
    """tiny-llama with an untied output layer whose rows for the protocol tokens are set so that each
    gets about `p` probability at an average position (rollouts then vary in length and structure)."""
    import math

    import torch

    from thinkbudget.models import load_model_and_tokenizer
    from thinkbudget.protocol import build_messages, render_prompt

    model, tok = load_model_and_tokenizer(tiny_model_path, dtype="float32")
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone())
    prompts = [
        render_prompt(tok, build_messages("What is 3*4?"), thinking_budget=16),
        render_prompt(tok, build_messages("Compute 17+5."), enable_thinking=False),
    ]
    tok.padding_side = "left"
    with torch.no_grad():
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = model(**enc, output_hidden_states=True)
        mask = enc["attention_mask"].bool()
        hidden = out.hidden_states[-1][mask]  # after the final norm: what the output layer sees
        log_z = torch.logsumexp(out.logits[mask], dim=-1).mean().item()
        mean = hidden.mean(0)
        for token, p in {"<|im_end|>": 0.1, "<think>": 0.1, "</think>": 0.06}.items():
            # h . w = log(p) + log Z at the mean hidden state -> probability ~p there.
            row = tok.convert_tokens_to_ids(token)
            model.lm_head.weight[row] = (math.log(p) + log_z) * mean / mean.dot(mean)
    path = tmp_path_factory.mktemp("varied-tiny-llama")
    model.save_pretrained(path)
    tok.padding_side = "right"
    tok.save_pretrained(path)
    return str(path)
