"""A decoding engine for the CPU: continuous batching over a preallocated KV cache.

Why: profiling the proof's evaluation (``results/cpu-profile/``) showed that ``model.generate`` with
refilled batches spends about two thirds of its time outside the matrix products it cannot avoid:
re-reading the tokens of every row continued into a refilled batch (a quarter), attention over
left-padded, growing caches (a fifth) and growing the cache by concatenation (a seventh). This engine
keeps every row's keys and values in one preallocated tensor per layer for the row's whole life:

- a finished row frees its slot and the next request is prefilled into it (continuous batching), so no
  row is ever read twice and the batch stays full;
- each step writes one key/value per row in place and attends over the filled part only (positions
  up to the longest row in flight, the rest masked), with no padding in front of any row;
- the output head runs on the last position of each row only.

The decoder layers are the model's own modules (weights, norms, rotary embedding, MLP); only the
order of calls is written here, for the architectures in :data:`SUPPORTED` (checked against the
model's own forward in ``tests/test_kv_engine.py``). Sampling, budget forcing and log-probabilities
are the caller's (:class:`thinkbudget.generation.CachedGenerator`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

# Decoder-only models whose layers are pre-norm attention + gated MLP with rotary embeddings, as
# transformers writes them (Qwen3 adds a norm on queries and keys, read from the module if present).
SUPPORTED = ("llama", "qwen2", "qwen3")


def supports(model: Any) -> bool:
    """True when the engine can run ``model`` (its architecture is in :data:`SUPPORTED`)."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in SUPPORTED:
        return False
    if getattr(config, "use_sliding_window", False):
        return False  # a sliding window attends over a band, not the whole row
    if getattr(config, "mlp_bias", False):
        return False  # the fused gate/up projection carries no bias
    return hasattr(model, "model") and hasattr(model.model, "layers")


def check_supported(model: Any) -> None:
    """Raise ``ValueError`` naming the model's architecture and the 'hf' backend unless it is supported."""
    if not supports(model):
        kind = getattr(getattr(model, "config", None), "model_type", None)
        raise ValueError(
            f"the cached decoding engine runs {', '.join(SUPPORTED)} models (without sliding "
            f"windows or MLP biases); this model is {kind!r}: use the 'hf' backend"
        )


class KVEngine:
    """Slots of a preallocated KV cache, prefilled and decoded in place.

    ``slots`` rows of at most ``max_len`` tokens (prompt + generated). A slot holds one sequence
    from its prefill until the caller frees it; :meth:`move` packs live rows at the front so that a
    decoding step runs over ``[0, n)`` only.
    """

    def __init__(self, model: Any, slots: int, max_len: int, fuse: bool = True):
        check_supported(model)
        self.model = model
        self.base = model.model
        config = model.config
        self.n_heads = config.num_attention_heads
        self.n_kv = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.n_heads
        self.slots = slots
        self.max_len = max_len
        param = next(model.parameters())
        self.dtype, self.device = param.dtype, param.device
        shape = (slots, self.n_kv, max_len, self.head_dim)
        n_layers = len(self.base.layers)
        self.keys = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(n_layers)]
        self.values = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(n_layers)]
        self.lengths = torch.zeros(slots, dtype=torch.long)  # tokens held by each slot
        # Where the time goes (read by CachedGenerator into an evaluation's results.json): prompt
        # positions read (padding included) and decoding steps, with their wall seconds (on a GPU, which
        # runs asynchronously, the split between the two is approximate).
        self.stats = {
            "prefill_calls": 0,
            "prefill_positions": 0,
            "prefill_s": 0.0,
            "steps": 0,
            "step_rows": 0,
            "step_s": 0.0,
        }
        self.prefix: list[int] = []  # set_prefix: read once, copied into every slot that starts with it
        self.prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        # One matmul for queries, keys and values and one for the MLP's gate and up projections: fewer,
        # wider products keep the cores busier on small decoding batches (built per engine, so a GRPO
        # rollout always reads the policy's current weights).
        with torch.no_grad():  # copies of the weights, never part of a training graph
            self.fused = [_fused_weights(layer) for layer in self.base.layers] if fuse else None

    # -- the decoder, position by position --------------------------------------------------------
    def _layers(self, x: torch.Tensor, positions: torch.Tensor, write: Any, attend: Any) -> torch.Tensor:
        """Run every decoder layer on ``x`` (rows, q_len, hidden) at ``positions`` (rows, q_len).
        ``write(layer, k, v)`` stores the new keys/values; ``attend(layer, q)`` returns the attention
        output (rows, heads, q_len, head_dim)."""
        cos, sin = self.base.rotary_emb(x, positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        rows, q_len, _ = x.shape
        q_width, kv_width = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        for i, layer in enumerate(self.base.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            if self.fused is not None:
                qkv_w, qkv_b, gate_up = self.fused[i]
                q, k, v = F.linear(h, qkv_w, qkv_b).split([q_width, kv_width, kv_width], dim=-1)
            else:
                q, k, v = attn.q_proj(h), attn.k_proj(h), attn.v_proj(h)
            q = q.view(rows, q_len, -1, self.head_dim)
            k = k.view(rows, q_len, -1, self.head_dim)
            v = v.view(rows, q_len, -1, self.head_dim).transpose(1, 2)
            if hasattr(attn, "q_norm"):  # Qwen3: RMSNorm over each head's queries and keys
                q, k = attn.q_norm(q), attn.k_norm(k)
            q, k = q.transpose(1, 2), k.transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            write(i, k, v)
            out = attend(i, q).transpose(1, 2).reshape(rows, q_len, -1)
            x = x + attn.o_proj(out)
            h = layer.post_attention_layernorm(x)
            if self.fused is not None:
                gate, up = F.linear(h, self.fused[i][2]).chunk(2, dim=-1)
                x = x + layer.mlp.down_proj(layer.mlp.act_fn(gate) * up)
            else:
                x = x + layer.mlp(h)
        return x

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(self.base.norm(hidden)).float()

    @torch.inference_mode()
    def set_prefix(self, prefix: list[int]) -> None:
        """Read ``prefix`` once (the system prompt that every request of an evaluation shares): a later
        prompt that starts with it gets a copy of its keys and values and reads only the rest."""
        self.prefix, self.prefix_kv = [], []
        if prefix:
            self.prefill([0], [list(prefix)])
            n = len(prefix)
            self.prefix_kv = [
                (k[0:1, :, :n].clone(), v[0:1, :, :n].clone()) for k, v in zip(self.keys, self.values)
            ]
            self.prefix = list(prefix)
            self.lengths[0] = 0

    @torch.inference_mode()
    def prefill(self, slots: list[int], prompts: list[list[int]]) -> torch.Tensor:
        """Read each prompt into its slot; returns the next-token logits (len(slots), vocab), float32.

        The prompts go in together, right-padded: causal attention never lets a real position see the
        padding after it, and a slot's padded positions lie past its length (masked, then overwritten).
        A prompt given several times (GRPO's group, N samples of one problem) is read once and its keys
        and values copied into each of its slots; the prefix of :meth:`set_prefix` is copied, not read."""
        t0 = time.perf_counter()
        longest = max(len(p) for p in prompts)
        if longest > self.max_len:
            raise ValueError(f"a prompt of {longest} tokens does not fit a cache of {self.max_len}")
        start = len(self.prefix)
        if not start or any(len(p) <= start or p[:start] != self.prefix for p in prompts):
            start = 0
        unique: dict[tuple[int, ...], int] = {}
        of = torch.tensor([unique.setdefault(tuple(p), len(unique)) for p in prompts], device=self.device)
        reads = [list(p[start:]) for p in unique]  # what each distinct prompt still has to read
        width = max(len(p) for p in reads)
        ids = torch.tensor([p + [p[-1]] * (width - len(p)) for p in reads], device=self.device)
        index = torch.tensor(slots, device=self.device)
        positions = torch.arange(start, start + width, device=self.device).expand(len(reads), width)
        causal = torch.ones(width, width, dtype=torch.bool, device=self.device).tril()
        # Each read position sees the whole prefix and the positions before it in its own prompt.
        mask = torch.cat([torch.ones(width, start, dtype=torch.bool, device=self.device), causal], dim=1)

        current: list[torch.Tensor] = []  # this layer's keys and values, prefix included, for attend

        def write(i: int, k: torch.Tensor, v: torch.Tensor) -> None:
            if start:
                pk, pv = self.prefix_kv[i]
                self.keys[i][index, :, :start] = pk
                self.values[i][index, :, :start] = pv
                k = torch.cat([pk.expand(len(reads), -1, -1, -1), k], dim=2)
                v = torch.cat([pv.expand(len(reads), -1, -1, -1), v], dim=2)
            self.keys[i][index, :, start : start + width] = k[of, :, start:]
            self.values[i][index, :, start : start + width] = v[of, :, start:]
            current[:] = [k, v]

        def attend(i: int, q: torch.Tensor) -> torch.Tensor:
            k, v = current
            rep = self.n_heads // self.n_kv
            if rep > 1:
                k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            if not start:
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

        hidden = self._layers(self.base.embed_tokens(ids), positions, write, attend)
        last = torch.tensor([len(p) - 1 for p in reads], device=self.device)
        self.lengths[index.cpu()] = torch.tensor([len(p) for p in prompts])
        logits = self._logits(hidden[torch.arange(len(reads), device=self.device), last])[of]
        self.stats["prefill_calls"] += 1
        self.stats["prefill_positions"] += len(reads) * width
        self.stats["prefill_s"] += time.perf_counter() - t0
        return logits

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append one token to each of the slots ``[0, len(tokens))``; returns their next-token logits."""
        t0 = time.perf_counter()
        n = tokens.shape[0]
        pos = self.lengths[:n].clone()
        if int(pos.max()) >= self.max_len:
            raise ValueError(f"a row reached the cache's {self.max_len} tokens")
        width = int(pos.max()) + 1
        rows = torch.arange(n, device=self.device)
        pos_d = pos.to(self.device)
        # Each row attends to its own positions [0, length] only.
        mask = (torch.arange(width, device=self.device)[None, :] <= pos_d[:, None])[:, None, None, :]

        def write(i: int, k: torch.Tensor, v: torch.Tensor) -> None:
            self.keys[i][rows, :, pos_d] = k[:, :, 0]
            self.values[i][rows, :, pos_d] = v[:, :, 0]

        def attend(i: int, q: torch.Tensor) -> torch.Tensor:
            # The query heads that share a key/value head go in as that head's queries (one position,
            # so no causal order among them): no copy of the cache per query head, which grouped-query
            # attention in SDPA makes on a CPU (5x slower measured for SmolLM2's 9 heads over 3).
            grouped = q.reshape(n, self.n_kv, self.n_heads // self.n_kv, self.head_dim)
            k = self.keys[i][:n, :, :width]
            v = self.values[i][:n, :, :width]
            out = F.scaled_dot_product_attention(grouped, k, v, attn_mask=mask)
            return out.reshape(n, self.n_heads, 1, self.head_dim)

        hidden = self._layers(
            self.base.embed_tokens(tokens.to(self.device))[:, None], pos_d[:, None], write, attend
        )
        self.lengths[:n] += 1
        logits = self._logits(hidden[:, 0])
        self.stats["steps"] += 1
        self.stats["step_rows"] += n
        self.stats["step_s"] += time.perf_counter() - t0
        return logits

    def move(self, src: int, dst: int) -> None:
        """Copy slot ``src``'s sequence into slot ``dst`` (to pack live rows at the front)."""
        length = int(self.lengths[src])
        for k, v in zip(self.keys, self.values):
            k[dst, :, :length] = k[src, :, :length]
            v[dst, :, :length] = v[src, :, :length]
        self.lengths[dst] = length


def _fused_weights(layer: Any) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(q/k/v weight, q/k/v bias or None, gate/up weight) of one decoder layer, concatenated."""
    attn, mlp = layer.self_attn, layer.mlp
    projections = (attn.q_proj, attn.k_proj, attn.v_proj)
    weight = torch.cat([p.weight for p in projections])
    bias = torch.cat([p.bias for p in projections]) if attn.q_proj.bias is not None else None
    if getattr(mlp.gate_proj, "bias", None) is not None:
        raise ValueError("the cached decoding engine expects an MLP without biases (mlp_bias: false)")
    return weight, bias, torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
