"""The chunked output head (thinkbudget/head.py): the same log-probabilities, entropies and gradients as the
ordinary full-logits computation, for any chunk size, and a check that refuses models whose logits are not
a plain linear map of the decoder's output."""

from __future__ import annotations

import pytest
import torch

from thinkbudget.head import final_hidden, head_parts, matches_model_logits, token_logprobs


def _reference(hidden, weight, targets, temperature):
    logits = (hidden @ weight.T).float() / temperature
    logp = torch.log_softmax(logits, dim=-1)
    return (
        logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1),
        -(logp.exp() * logp).sum(-1),
        logits.argmax(-1) == targets,
    )


@pytest.mark.parametrize(
    ("n", "chunk", "temperature"),
    [(1, 1, 1.0), (7, 1, 1.0), (7, 3, 0.7), (7, 7, 1.3), (7, 100, 1.0), (33, 8, 0.5)],
)
def test_values_and_gradients_equal_the_full_logits(n, chunk, temperature):
    gen = torch.Generator().manual_seed(n * 100 + chunk)
    hidden = torch.randn(n, 12, generator=gen, requires_grad=True)
    weight = torch.randn(40, 12, generator=gen, requires_grad=True)
    targets = torch.randint(0, 40, (n,), generator=gen)
    upstream = torch.randn(n, generator=gen)

    ref_logp, ref_entropy, ref_hit = _reference(hidden, weight, targets, temperature)
    (ref_logp * upstream).sum().backward()
    ref_grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None

    out = token_logprobs(
        hidden, weight, targets, temperature=temperature, chunk=chunk, with_entropy=True, with_argmax=True
    )
    (out.logps * upstream).sum().backward()
    assert torch.allclose(out.logps, ref_logp, atol=1e-5)
    assert torch.allclose(out.entropy, ref_entropy, atol=1e-4)
    assert torch.equal(out.argmax_hit, ref_hit)
    assert torch.allclose(hidden.grad, ref_grads[0], atol=1e-5)
    assert torch.allclose(weight.grad, ref_grads[1], atol=1e-5)
    assert not out.entropy.requires_grad and not out.argmax_hit.requires_grad


def test_fuzz_against_the_full_logits():
    for seed in range(20):
        gen = torch.Generator().manual_seed(seed)
        n, h, v = (int(x) for x in torch.randint(1, 30, (3,), generator=gen))
        hidden = torch.randn(n, h, generator=gen, requires_grad=True)
        weight = (torch.randn(v + 1, h, generator=gen) * 3).requires_grad_()
        targets = torch.randint(0, v + 1, (n,), generator=gen)
        chunk = int(torch.randint(1, n + 3, (1,), generator=gen))
        ref, _, _ = _reference(hidden, weight, targets, 1.0)
        ref.sum().backward()
        grads = hidden.grad.clone(), weight.grad.clone()
        hidden.grad = weight.grad = None
        token_logprobs(hidden, weight, targets, chunk=chunk).logps.sum().backward()
        assert torch.allclose(hidden.grad, grads[0], atol=1e-4), seed
        assert torch.allclose(weight.grad, grads[1], atol=1e-4), seed


def test_under_autocast_the_product_is_bf16_and_the_log_softmax_fp32():
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(9, 16, generator=gen, requires_grad=True)
    weight = torch.randn(50, 16, generator=gen, requires_grad=True)
    targets = torch.randint(0, 50, (9,), generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = torch.log_softmax((hidden @ weight.T).float(), -1).gather(-1, targets[:, None]).squeeze(-1)
        out = token_logprobs(hidden, weight, targets, chunk=4)
    assert out.logps.dtype == torch.float32
    assert torch.allclose(out.logps, ref, atol=1e-5)  # the same bf16 product, the same fp32 normaliser
    out.logps.sum().backward()
    assert hidden.grad.dtype == torch.float32 and weight.grad.dtype == torch.float32


def test_bad_shapes_and_chunks_are_errors():
    h, w = torch.randn(3, 4), torch.randn(5, 4)
    with pytest.raises(ValueError, match="hidden must be \\[N, H\\] and targets \\[N\\]"):
        token_logprobs(h, w, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="hidden must be"):
        token_logprobs(h[None], w, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="chunk: vocabulary rows per chunk, must be >= 1, got 0"):
        token_logprobs(h, w, torch.zeros(3, dtype=torch.long), chunk=0)


def _tiny(config_cls, model_cls, **extra):
    config = config_cls(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        **extra,
    )
    torch.manual_seed(0)
    return model_cls(config).eval()


def test_a_plain_llama_head_matches_its_own_logits():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = _tiny(LlamaConfig, LlamaForCausalLM)
    ids = torch.randint(0, 64, (2, 9))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    decoder, weight = head_parts(model)
    assert weight is model.lm_head.weight
    assert final_hidden(decoder, input_ids=ids, attention_mask=mask).shape == (2, 9, 16)
    assert matches_model_logits(model, ids, mask)


def test_a_soft_capped_head_is_refused():
    """Gemma 2 caps its logits inside the forward (final_logit_softcapping): the check sees it."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    model = _tiny(Gemma2Config, Gemma2ForCausalLM, final_logit_softcapping=1.0)
    with torch.no_grad():
        model.lm_head.weight.mul_(100)  # logits of several units, where the cap bends them
    ids = torch.randint(0, 64, (1, 9))
    assert head_parts(model) is not None  # its head looks plain ...
    assert not matches_model_logits(model, ids, torch.ones_like(ids))  # ... its logits are not


def test_heads_that_are_not_plain_linear_maps_have_no_parts():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = _tiny(LlamaConfig, LlamaForCausalLM)
    model.lm_head = torch.nn.Linear(16, 64, bias=True)
    assert head_parts(model) is None
    assert head_parts(torch.nn.Linear(3, 3)) is None  # no decoder at all


def test_choose_head_loss():
    """A run's lm_head_loss on its first batch: by name it is itself (``chunked`` checked against the
    model), ``auto`` on a CPU is ``chunked`` where the model fits it, else ``full_logits`` with a warning."""
    import contextlib
    import logging

    from transformers import Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM

    from thinkbudget.head import choose_head_loss

    plain = _tiny(LlamaConfig, LlamaForCausalLM)
    capped = _tiny(Gemma2Config, Gemma2ForCausalLM, final_logit_softcapping=1.0)
    with torch.no_grad():
        capped.lm_head.weight.mul_(100)
    ids = torch.randint(0, 64, (2, 7))
    mask = torch.ones_like(ids)
    ctx = contextlib.nullcontext
    for asked in ("fused", "full_logits"):
        assert choose_head_loss(asked, True, None, ids, mask, ctx) == asked  # no model needed
    assert choose_head_loss("auto", True, plain, ids, mask, ctx) == "chunked"
    assert choose_head_loss("chunked", False, plain, ids, mask, ctx) == "chunked"
    with pytest.raises(ValueError, match="lm_head_loss: chunked needs a model .*Gemma2ForCausalLM is not"):
        choose_head_loss("chunked", True, capped, ids, mask, ctx)
    logger = logging.getLogger("thinkbudget.head")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        assert choose_head_loss("auto", True, capped, ids, mask, ctx) == "full_logits"
    finally:
        logger.removeHandler(handler)
    assert any("does not fit the chunked head" in r.getMessage() for r in records)
