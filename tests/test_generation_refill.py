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
