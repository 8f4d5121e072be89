"""The hf backend: per-sample seeds make answers independent of batching, and refilled batches
(rows continued from their tokens so far) give exactly what one long batch gives."""

from __future__ import annotations

from collections import Counter

import pytest

from thinkbudget.generation import GenerationRequest, HFGenerator, SamplingSettings, sample_seed
from thinkbudget.parsing import parse_completion
from thinkbudget.protocol import THINK_OPEN, build_messages, render_prompt


@pytest.fixture(scope="module")
def requests_(tokenizer):
    think = tokenizer.convert_tokens_to_ids(THINK_OPEN)
    out = []
    for i in range(18):
        text = render_prompt(tokenizer, build_messages(f"Compute {i} + {i * 7}."), enable_thinking=True)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if i % 3 == 0:  # s1-style pre-filled <think>: every generated token is thinking
            ids = [*ids, think]
        out.append(GenerationRequest(ids, force_budget=5 if i % 2 else None, seed=sample_seed(0, f"k{i}")))
    return out


def _run(model, tokenizer, requests, stop_ids=None, **kw):
    gen = HFGenerator(
        tokenizer,
        SamplingSettings(max_new_tokens=20, temperature=1.0, top_p=0.9, top_k=40),
        model=model,
        **kw,
    )
    if stop_ids is not None:
        gen.stop_ids = stop_ids
    return gen.generate(requests)


def test_refill_and_batching_do_not_change_answers(tiny_model, tokenizer, requests_):
    first = _run(tiny_model, tokenizer, requests_, batch_rows=len(requests_))
    # Frequent tokens as stop ids: rows end at many different lengths, so refills really happen.
    counts = Counter(t for r in first for t in r.token_ids)
    stops = {t for t, _ in counts.most_common(12)}
    whole = _run(tiny_model, tokenizer, requests_, stop_ids=stops, batch_rows=len(requests_))
    lengths = {len(r.token_ids) for r in whole}
    assert len(lengths) > 3, lengths  # the rows do stop at different points
    for kw in ({"batch_rows": 4}, {"batch_rows": 7, "refill_share": 0.3}, {"batch_rows": 1}):
        again = _run(tiny_model, tokenizer, requests_, stop_ids=stops, **kw)
        for a, b in zip(whole, again):
            assert a.token_ids == b.token_ids and a.finish_reason == b.finish_reason and a.forced == b.forced
            assert a.logprob_sum == pytest.approx(b.logprob_sum, abs=1e-3)
    for r in whole:  # a row ends at its first stop token, or at the limit
        cut = [k for k, t in enumerate(r.token_ids) if t in stops]
        assert (r.finish_reason == "stop" and cut == [len(r.token_ids) - 1]) or (
            r.finish_reason == "length" and not cut and len(r.token_ids) == 20
        )


def test_forcing_counts_tokens_of_earlier_rounds(tiny_model, tokenizer, requests_):
    """A row continued in a later batch is forced after exactly B thinking tokens in all."""
    out = _run(tiny_model, tokenizer, requests_, batch_rows=3, refill_share=0.01)
    forced = 0
    for req, res in zip(requests_, out):
        parsed = parse_completion(res.token_ids, tokenizer)
        if res.forced:
            forced += 1
            assert req.force_budget == 5
            prefilled = req.prompt_ids[-1] == tokenizer.convert_tokens_to_ids(THINK_OPEN)
            n = len(res.token_ids[: res.token_ids.index(tokenizer.convert_tokens_to_ids("</think>"))])
            assert n == 5 if prefilled else parsed.thinking_tokens == 5
    assert forced >= 3


def test_sample_seed_is_a_pure_function_of_seed_and_key():
    assert sample_seed(0, "a") == sample_seed(0, "a")
    assert len({sample_seed(s, k) for s in range(3) for k in "abc"}) == 9
    assert 0 <= sample_seed(123, "x") < 2**62


# The per-sample sampler: the distribution it draws from (temperature, then top-k, then top-p, as
# transformers orders them), on literal logits.
LOGITS = [2.0, 1.0, 0.5, 0.0, -1.0, -3.0]


def _expected(logits, temperature, top_k, top_p):
    import math

    s = [x / temperature for x in logits]
    order = sorted(range(len(s)), key=lambda i: -s[i])
    keep = order[:top_k] if top_k else order
    z = sum(math.exp(s[i]) for i in keep)
    p = {i: math.exp(s[i]) / z for i in keep}
    kept, mass = [], 0.0
    for i in keep:  # the smallest prefix whose mass reaches top_p (the crossing token stays)
        if mass >= top_p:
            break
        kept.append(i)
        mass += p[i]
    z = sum(p[i] for i in kept)
    return {i: p[i] / z for i in kept}


@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [(1.0, 0, 1.0), (1.0, 3, 1.0), (0.5, 0, 0.8), (1.0, 4, 0.7), (2.0, 2, 0.99), (1.0, 0, 0.3)],
)
def test_seeded_sampler_draws_from_the_filtered_distribution(temperature, top_k, top_p):
    import torch

    from thinkbudget.generation import _SeededSampler

    draws = 3000
    settings = SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p)
    generators = [torch.Generator().manual_seed(i) for i in range(draws)]
    scores = torch.tensor([LOGITS] * draws)
    out = _SeededSampler(generators, settings)(torch.zeros(draws, 1, dtype=torch.long), scores)
    assert ((out == 0).sum(dim=-1) == 1).all()  # exactly one token left possible per row
    chosen = out.argmax(dim=-1).tolist()
    expected = _expected(LOGITS, temperature, top_k, top_p)
    counts = Counter(chosen)
    assert set(counts) <= set(expected)  # never a token the filters removed
    for token, p in expected.items():
        assert abs(counts[token] / draws - p) < 0.03, (token, counts[token] / draws, p)


def test_seeded_sampler_depends_only_on_the_rows_generator():
    import torch

    from thinkbudget.generation import _SeededSampler

    settings = SamplingSettings(temperature=1.0, top_k=4, top_p=0.9)
    scores = torch.randn(8, 50, generator=torch.Generator().manual_seed(0))
    first = _SeededSampler([torch.Generator().manual_seed(i) for i in range(8)], settings)
    alone = [
        _SeededSampler([torch.Generator().manual_seed(i)], settings)(torch.zeros(1, 1), scores[i : i + 1])
        for i in range(8)
    ]
    batched = first(torch.zeros(8, 1), scores)
    assert torch.equal(batched, torch.cat(alone))
