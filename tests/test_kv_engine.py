"""The cached decoding engine against the model's own forward, and the ``cached`` backend against ``hf``.

The engine reorders the model's computation (its own KV cache, continuous batching, packing rows); the
model's forward over the whole sequence is the reference for every logit, and the ``hf`` backend (plain
``model.generate``) for every generated token, forced ``</think>`` and log-probability.
"""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen2Config, Qwen3Config

from thinkbudget import generation
from thinkbudget.kv_engine import KVEngine, supports
from thinkbudget.protocol import THINK_OPEN, build_messages, render_prompt

VOCAB = 97


def _tiny(config_cls, **extra):
    torch.manual_seed(0)
    config = config_cls(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        **extra,
    )
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


ARCHITECTURES = {
    "llama": lambda: _tiny(LlamaConfig),
    "qwen2": lambda: _tiny(Qwen2Config),  # biases on q/k/v
    "qwen3": lambda: _tiny(Qwen3Config, head_dim=8),  # RMSNorm on each head's queries and keys
}


def assert_logits(model, logits, seqs):
    """Row r of ``logits`` equals the model's own forward over the whole of ``seqs[r]``."""
    for row, seq in enumerate(seqs):
        with torch.inference_mode():
            reference = model(torch.tensor([seq])).logits[0, -1]
        torch.testing.assert_close(logits[row], reference, rtol=1e-4, atol=1e-4)


def step_and_check(model, engine, rng, seqs):
    """One decoding step with a random token appended to every sequence, its logits checked."""
    tokens = [rng.randrange(VOCAB) for _ in seqs]
    for seq, t in zip(seqs, tokens):
        seq.append(t)
    assert_logits(model, engine.step(torch.tensor(tokens)), seqs)


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_engine_logits_equal_model_forward(arch, fuse):
    """Prefill, then steps, with rows of different lengths packed by ``move``: every row's logits
    equal the model's forward over that row's whole sequence."""
    model = ARCHITECTURES[arch]()
    rng = random.Random(1)
    seqs = [[rng.randrange(VOCAB) for _ in range(n)] for n in (5, 9, 2)]
    engine = KVEngine(model, slots=4, max_len=20, fuse=fuse)

    assert_logits(model, engine.prefill([0, 1, 2], seqs), seqs)
    # A prompt given twice is read once and lands in both slots (2 again, and 3, which the steps skip).
    assert_logits(model, engine.prefill([3, 2], [seqs[2], seqs[2]]), [seqs[2], seqs[2]])
    assert torch.equal(engine.keys[0][3, :, :2], engine.keys[0][2, :, :2])
    for step in range(4):
        step_and_check(model, engine, rng, seqs)
        if step == 1:  # row 0 leaves; row 2 moves into its slot; a new row joins in slot 2
            engine.move(2, 0)
            seqs[0] = seqs[2]
            seqs[2] = [rng.randrange(VOCAB) for _ in range(7)]
            assert_logits(model, engine.prefill([2], [seqs[2]]), [seqs[2]])
    assert engine.lengths[:3].tolist() == [len(s) for s in seqs]


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_shared_prefix_is_read_once(arch):
    """Prompts that start with the engine's prefix read only their own tokens, attending to a copy of
    the prefix's keys and values: the logits equal the model's forward over the whole prompt, before
    and after steps; a prefill with a prompt that does not start with the prefix reads everything."""
    model = ARCHITECTURES[arch]()
    rng = random.Random(2)
    prefix = [rng.randrange(VOCAB) for _ in range(6)]
    seqs = [prefix + [rng.randrange(VOCAB) for _ in range(n)] for n in (1, 4, 3)]
    engine = KVEngine(model, slots=4, max_len=24)
    engine.set_prefix(prefix)

    assert_logits(model, engine.prefill([0, 1, 2], seqs), seqs)
    other = [rng.randrange(VOCAB) for _ in range(5)]
    assert_logits(model, engine.prefill([3], [other]), [other])
    seqs.append(other)
    for _ in range(3):
        step_and_check(model, engine, rng, seqs)


def test_engine_counts_what_it_reads_and_decodes():
    """stats: prompt positions read (the shared prefix once, each distinct prompt padded to the longest
    of its call), decoding steps and rows, each part's seconds."""
    model = ARCHITECTURES["llama"]()
    engine = KVEngine(model, slots=4, max_len=24)
    engine.set_prefix([1, 2, 3])  # 3 positions, one call
    engine.prefill([0, 1, 2], [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 6]])  # 2 distinct, 2 wide
    engine.prefill([3], [[9, 9, 9]])  # not the prefix: 3 positions
    for n in (4, 4, 2):
        engine.step(torch.zeros(n, dtype=torch.long))
    stats = engine.stats
    assert {k: v for k, v in stats.items() if not k.endswith("_s")} == {
        "prefill_calls": 3,
        "prefill_positions": 3 + 2 * 2 + 3,
        "steps": 3,
        "step_rows": 10,
    }
    assert stats["prefill_s"] > 0 and stats["step_s"] > 0


@pytest.mark.parametrize(
    ("prompts", "prefix"),
    [
        ([[1, 2, 3], [1, 2, 4]], [1, 2]),
        ([[1, 2, 3], [1, 2, 3]], [1, 2]),  # every prompt keeps a token of its own
        ([[1, 2], [1, 2, 3, 4]], [1]),
        ([[5, 2, 3], [1, 2, 3]], []),
        ([[7]], []),
        ([[1, 2, 3, 4]], [1, 2, 3]),
    ],
)
def test_common_prefix(prompts, prefix):
    assert generation._common_prefix(prompts) == prefix


def test_engine_refuses_what_it_cannot_run():
    gpt2 = AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=VOCAB))
    assert not supports(gpt2) and supports(ARCHITECTURES["llama"]())
    with pytest.raises(ValueError, match="'gpt2'.*'hf' backend"):
        KVEngine(gpt2, 1, 8)
    windowed = _tiny(Qwen2Config, use_sliding_window=True, sliding_window=4)
    assert not supports(windowed) and not supports(_tiny(LlamaConfig, mlp_bias=True))
    engine = KVEngine(ARCHITECTURES["llama"](), 2, 6)
    with pytest.raises(ValueError, match="7 tokens does not fit a cache of 6"):
        engine.prefill([0], [[1] * 7])
    sampling = generation.SamplingSettings(max_new_tokens=4)
    assert generation.resolve_backend("auto", gpt2) == "hf"
    assert generation.resolve_backend("auto", ARCHITECTURES["llama"]()) == "cached"
    with pytest.raises(ValueError, match="'hf' backend"):
        generation.build_generator("cached", model=gpt2, tokenizer=_Tok(), sampling=sampling)


class _Tok:
    eos_token_id = 0
    pad_token_id = 0

    def convert_tokens_to_ids(self, token):
        return 1


def _requests(tokenizer, n, seed):
    """Chat prompts of different lengths, half pre-filled with <think>, some with a forcing budget."""
    open_id = tokenizer.convert_tokens_to_ids(THINK_OPEN)
    rng = random.Random(seed)
    words = "add the numbers then think about seven and three more times carefully".split()
    out = []
    for k in range(n):
        q = " ".join(rng.choice(words) for _ in range(rng.randrange(1, 12)))
        ids = tokenizer(render_prompt(tokenizer, build_messages(q)), add_special_tokens=False)["input_ids"]
        if k % 2:
            ids = ids + [open_id]
        budget = rng.choice([None, None, 0, 2, 5])
        out.append(generation.GenerationRequest(ids, budget, seed=rng.randrange(2**31)))
    return out


def _generate(backend, model, tokenizer, sampling, requests, batch_rows, stop_ids=(), refill_rows=None):
    gen = generation.build_generator(
        backend, model=model, tokenizer=tokenizer, sampling=sampling, batch_rows=batch_rows
    )
    gen.stop_ids |= set(stop_ids)
    if refill_rows is not None:
        gen.refill_rows = refill_rows
    return gen.generate(requests)


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_cached_backend_equals_hf(tiny_model, tokenizer, temperature):
    """Same tokens, stop reasons, forced flags and log-probabilities as ``model.generate``, with rows
    finishing at different steps (a frequent token made a stop token), slots refilled and packed."""
    requests = _requests(tokenizer, 11, seed=3)
    sampling = generation.SamplingSettings(max_new_tokens=12, temperature=temperature, top_k=20, top_p=0.9)
    first = _generate("hf", tiny_model, tokenizer, sampling, requests, batch_rows=16)
    counts: dict[int, int] = {}
    for r in first:
        for t in set(r.token_ids[1:-1]):
            counts[t] = counts.get(t, 0) + 1
    stop = max(counts, key=counts.get)  # in several rows but not all: they end at different steps
    hf = _generate("hf", tiny_model, tokenizer, sampling, requests, batch_rows=16, stop_ids=[stop])
    cached = _generate("cached", tiny_model, tokenizer, sampling, requests, batch_rows=4, stop_ids=[stop])
    assert {len(r.token_ids) for r in hf} != {12}  # some rows stopped early
    assert any(r.forced for r in hf)
    assert [r.token_ids for r in cached] == [r.token_ids for r in hf]
    assert [r.finish_reason for r in cached] == [r.finish_reason for r in hf]
    assert [r.forced for r in cached] == [r.forced for r in hf]
    for a, b in zip(cached, hf):
        assert a.logprob_sum == pytest.approx(b.logprob_sum, abs=1e-3)


def test_cached_backend_fuzz_greedy(tiny_model, tokenizer):
    """Random batches, slot counts and refill thresholds: greedy tokens always equal hf's."""
    rng = random.Random(7)
    sampling = generation.SamplingSettings(max_new_tokens=6, temperature=0.0)
    for trial in range(4):
        requests = _requests(tokenizer, rng.randrange(1, 9), seed=trial)
        hf = _generate("hf", tiny_model, tokenizer, sampling, requests, batch_rows=16)
        cached = _generate(
            "cached", tiny_model, tokenizer, sampling, requests,
            batch_rows=rng.randrange(1, 6), refill_rows=rng.randrange(1, 4),
        )  # fmt: skip
        assert [r.token_ids for r in cached] == [r.token_ids for r in hf], trial
        assert [r.forced for r in cached] == [r.forced for r in hf], trial


def test_unseeded_draw_follows_the_warped_distribution():
    """The batch draw of unseeded rows: top-k 1 and a tiny top-p leave the best token; otherwise the
    frequencies follow softmax(logits / temperature) over the tokens top-k and top-p keep."""
    torch.manual_seed(0)
    scores = torch.tensor([[2.0, 1.0, 0.5, -1.0]] * 4000)
    best = torch.zeros(4000, dtype=torch.long)
    assert torch.equal(generation._draw(scores, generation.SamplingSettings(temperature=0.7, top_k=1)), best)
    assert torch.equal(
        generation._draw(scores, generation.SamplingSettings(temperature=0.7, top_p=0.01)), best
    )
    for settings, kept in [
        (generation.SamplingSettings(temperature=1.0), 4),
        (generation.SamplingSettings(temperature=0.5, top_k=2), 2),
        (generation.SamplingSettings(temperature=1.0, top_p=0.8), 2),  # 0.61 + 0.22 crosses 0.8 at the 2nd
    ]:
        counts = torch.bincount(generation._draw(scores, settings), minlength=4).float() / 4000
        expected = torch.zeros(4)
        expected[:kept] = (scores[0, :kept] / settings.temperature).softmax(-1)
        assert torch.allclose(counts, expected, atol=0.03), (settings, counts, expected)
