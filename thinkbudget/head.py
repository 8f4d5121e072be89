"""The output head's log-probabilities in chunks of the vocabulary, over the scored positions only.

A causal LM's loss needs, at every supervised position, ``log p(target) = logit[target] - logsumexp(logits)``
over the whole vocabulary (49,152 tokens for SmolLM2). Computed the ordinary way, a micro-batch of 4 rows of
224 completion tokens holds their logits in bf16 (88 MB), an fp32 copy (176 MB), the log-softmax that
autograd keeps for the backward pass (176 MB) and the gradient of each. :func:`token_logprobs` takes the final
hidden states of the positions that are scored (padding and prompt left out) and the head's weight, and
computes the same values in one pass over chunks of the vocabulary (an online ``logsumexp``). For the
backward pass it keeps the softmax in the product's dtype (2 bytes a logit in bf16; the target's own
probability, where ``1 - p`` needs the precision, in fp32), and writes each chunk's share of the weight's
gradient once into its own rows. On the demo's SFT steps it is ~7 % faster than one plain forward
(``full_logits``); ``results/cpu-memory.md`` has the measurements.

TRL has its own chunked head (``lm_head_loss: fused``), which runs Triton kernels on a GPU; on a CPU it scores
every position, prompt included, and is slower than one plain forward (``results/cpu-speed-lm-head.md``).

The model must apply its head as a plain linear map to the decoder's output (``logits = hidden @ W.T``, no
bias, no scaling or soft-capping): :func:`head_parts` returns the decoder and the weight, and
:func:`choose_head_loss` checks the result against the model's own logits on a trainer's first batch
(:func:`matches_model_logits`) before the trainer relies on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

logger = logging.getLogger(__name__)

DEFAULT_CHUNK = 4096  # vocabulary rows per chunk: 1,000 positions x 4,096 fp32 logits = 16 MB at a time


@dataclass
class HeadOutput:
    """Per scored position: ``logps`` (fp32, differentiable), and, without a graph, ``entropy`` of the
    temperature-scaled distribution and ``argmax_hit`` (the most likely token is the target)."""

    logps: torch.Tensor
    entropy: torch.Tensor | None = None
    argmax_hit: torch.Tensor | None = None


def _compute_dtype(weight: torch.Tensor) -> torch.dtype:
    """The dtype of the head's product: autocast's where it is on (as the model's own head under autocast)."""
    device = weight.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return weight.dtype


class _ChunkedLogProbs(torch.autograd.Function):
    """One pass of the head's product over chunks of the vocabulary. What the backward needs is the
    softmax ``p`` (the gradient of ``log p(target)`` is ``onehot(target) - p``): it is kept in the compute
    dtype (bf16 under autocast: 2 bytes a logit, against the 4 + 4 + 4 of fp32 logits, their log-softmax
    and its gradient), and the target's own probability, where ``1 - p`` needs the precision, in fp32.
    Each chunk's share of the weight's gradient is written once into its own rows."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, chunk, with_entropy, with_argmax):
        dtype = _compute_dtype(weight)
        h = hidden.detach().to(dtype)
        n, vocab = hidden.size(0), weight.size(0)
        probs = torch.empty(n, vocab, dtype=dtype, device=hidden.device)
        chunk_max = []  # the running max each chunk's exp(logit - max) was taken against
        # online logsumexp over the chunks: running max m, sum of exp(l - m) (and of exp(l - m) * l)
        m = torch.full((n,), -float("inf"), dtype=torch.float32, device=hidden.device)
        s = torch.zeros_like(m)
        s_l = torch.zeros_like(m) if with_entropy else None
        target_logit = torch.zeros_like(m)
        best = torch.zeros(n, dtype=torch.long, device=hidden.device) if with_argmax else None
        for v0 in range(0, vocab, chunk):
            logits = (h @ weight[v0 : v0 + chunk].detach().to(dtype).T).float().div_(temperature)
            c_max, c_arg = logits.max(dim=-1)
            new_m = torch.maximum(m, c_max)
            scale = (m - new_m).exp_()
            inside = (targets >= v0) & (targets < v0 + logits.size(1))
            if inside.any():
                local = (targets - v0).clamp_(0, logits.size(1) - 1)
                picked = logits.gather(-1, local.unsqueeze(-1)).squeeze(-1)
                target_logit = torch.where(inside, picked, target_logit)
            if with_argmax:
                best = torch.where(c_max > m, c_arg + v0, best)
            e = logits.sub(new_m.unsqueeze(-1)).exp_()
            s = s.mul_(scale).add_(e.sum(dim=-1))
            if with_entropy:  # H = log Z - sum p * l
                s_l = s_l.mul_(scale).add_((e * logits).sum(dim=-1))
            del logits
            probs[:, v0 : v0 + chunk] = e
            chunk_max.append(new_m)
            m = new_m
        log_z = m + s.log()
        for i, v0 in enumerate(range(0, vocab, chunk)):  # exp(l - m_c) -> exp(l - log_z) = p
            probs[:, v0 : v0 + chunk].mul_((chunk_max[i] - log_z).exp_().unsqueeze(-1).to(dtype))
        logps = target_logit - log_z
        entropy = (log_z - s_l / s) if with_entropy else None
        hit = (best == targets) if with_argmax else None
        ctx.save_for_backward(hidden, weight, targets, probs, logps.detach())
        ctx.dtype, ctx.temperature, ctx.chunk = dtype, temperature, chunk
        ctx.mark_non_differentiable(*[t for t in (entropy, hit) if t is not None])
        return logps, entropy, hit

    @staticmethod
    def backward(ctx, grad_logps, _grad_entropy, _grad_hit):
        hidden, weight, targets, probs, logps = ctx.saved_tensors
        dtype, temperature, chunk = ctx.dtype, ctx.temperature, ctx.chunk
        h = hidden.detach().to(dtype)
        g = grad_logps.float()
        target_grad = g * (1.0 - logps.exp())  # onehot - p at the target, in fp32
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.zeros(hidden.shape, dtype=torch.float32, device=hidden.device) if need_h else None
        grad_weight = torch.empty_like(weight) if need_w else None
        for v0 in range(0, weight.size(0), chunk):
            w = weight[v0 : v0 + chunk].detach().to(dtype)
            d = probs[:, v0 : v0 + chunk].float().mul_(-g.unsqueeze(-1))
            inside = ((targets >= v0) & (targets < v0 + w.size(0))).nonzero().squeeze(-1)
            d[inside, targets[inside] - v0] = target_grad[inside]
            d = d.div_(temperature).to(dtype)
            if need_h:
                grad_hidden += (d @ w).float()
            if need_w:
                grad_weight[v0 : v0 + chunk] = d.T @ h
        if need_h:
            grad_hidden = grad_hidden.to(hidden.dtype)
        return grad_hidden, grad_weight, None, None, None, None, None


def token_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    chunk: int = DEFAULT_CHUNK,
    with_entropy: bool = False,
    with_argmax: bool = False,
) -> HeadOutput:
    """``log softmax(hidden @ weight.T / temperature)[target]`` for each row of ``hidden`` ([N, H], the final
    hidden states of the scored positions), ``chunk`` rows of the vocabulary at a time, never holding more
    than one chunk's logits; differentiable in ``hidden`` and ``weight``. Under autocast the product runs in
    its dtype, like the model's own head; the log-softmax is fp32."""
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(
            f"hidden must be [N, H] and targets [N], got {tuple(hidden.shape)} and {tuple(targets.shape)}"
        )
    if chunk < 1:
        raise ValueError(f"chunk: vocabulary rows per chunk, must be >= 1, got {chunk}")
    logps, entropy, hit = _ChunkedLogProbs.apply(
        hidden, weight, targets, float(temperature), int(chunk), with_entropy, with_argmax
    )
    return HeadOutput(logps, entropy, hit)


def head_parts(model: Any) -> tuple[Any, torch.Tensor] | None:
    """``(decoder, head weight)`` of a causal LM whose head is a plain bias-free linear map of its decoder's
    output, or None (a wrapped model, such as DistributedDataParallel, whose forward must run through the
    wrapper; a head with a bias or of another kind). Scaling or soft-capping of the logits inside the
    model's forward is not visible here: :func:`matches_model_logits` catches it."""
    get_decoder = getattr(model, "get_decoder", None)
    get_head = getattr(model, "get_output_embeddings", None)
    if (
        isinstance(model, torch.nn.parallel.DistributedDataParallel)
        or get_decoder is None
        or get_head is None
    ):
        return None
    head = get_head()
    if type(head) is not torch.nn.Linear or head.bias is not None:
        return None
    decoder = get_decoder()
    if decoder is None or decoder is model:
        return None
    return decoder, head.weight


def final_hidden(decoder: Any, **inputs: Any) -> torch.Tensor:
    """The decoder's last hidden state (after its final norm), [B, T, H], for the model inputs ``inputs``
    (``input_ids``, ``attention_mask``, ...), without a KV cache."""
    return decoder(**inputs, use_cache=False).last_hidden_state


@torch.no_grad()
def matches_model_logits(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, atol: float = 0.05
) -> bool:
    """Whether :func:`token_logprobs` over :func:`head_parts` reproduces the model's own log-probabilities of
    ``input_ids`` (one row is enough: a head that scales or caps its logits differs everywhere). Run in the
    caller's autocast state, so both sides round alike; ``atol`` in nats."""
    parts = head_parts(model)
    if parts is None:
        return False
    decoder, weight = parts
    ids, mask = input_ids[:1], attention_mask[:1]
    valid = mask[0, 1:].bool()
    if not valid.any():
        return True
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[0, :-1].float()
    reference = torch.log_softmax(logits, dim=-1).gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)[valid]
    hidden = final_hidden(decoder, input_ids=ids, attention_mask=mask)[0, :-1][valid]
    ours = token_logprobs(hidden, weight, ids[0, 1:][valid]).logps
    ok = bool(torch.allclose(ours, reference, atol=atol, rtol=0))
    if not ok:
        logger.warning(
            "the chunked head differs from %s's own logits by up to %.3g nats: the model scales or caps its logits",
            type(model).__name__,
            (ours - reference).abs().max().item(),
        )
    return ok


def choose_head_loss(
    asked: str,
    use_cpu: bool,
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    autocast: Any,
) -> str:
    """``lm_head_loss`` for a run, decided once on its first batch (both trainers): ``auto`` resolves by
    device (:func:`thinkbudget.hardware.resolve_lm_head_loss`); ``chunked`` needs a model whose logits are
    its decoder's output times a bias-free head (:func:`matches_model_logits`, run under the trainer's
    ``autocast`` context factory). Asked for by name on another model ``chunked`` is an error; chosen by
    ``auto`` it becomes ``full_logits`` with a warning."""
    from thinkbudget.hardware import resolve_lm_head_loss

    choice = resolve_lm_head_loss(asked, use_cpu)
    if choice != "chunked":
        return choice
    with autocast():
        fits = matches_model_logits(model, input_ids, attention_mask)
    if fits:
        return "chunked"
    if asked == "chunked":
        raise ValueError(
            f"lm_head_loss: chunked needs a model whose logits are its decoder's output times a bias-free head "
            f"({type(model).__name__} is not); choose full_logits or fused"
        )
    logger.warning(
        "lm_head_loss auto: %s does not fit the chunked head; using full_logits", type(model).__name__
    )
    return "full_logits"
