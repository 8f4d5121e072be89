"""Generation backends for evaluation: token ids in, generated token ids out.

Four backends share one contract (:meth:`Generator.generate`): a list of :class:`GenerationRequest`
(prompt token ids, optional budget-forcing budget) becomes a list of :class:`GenerationResult`
(generated token ids up to and including end-of-sequence, why generation stopped, the summed token
log-probability). Token counts are always taken from these ids by :mod:`thinkbudget.parsing`.

- ``hf``: batched ``model.generate`` with left padding (the caller sorts requests by prompt length).
  Budget forcing uses :class:`thinkbudget.forcing.ThinkingBudgetProcessor`, the same processor the
  RL stage uses for budget-constrained rollouts. Runs everywhere; the only backend tests need.
- ``cached``: continuous batching over a preallocated KV cache (:mod:`thinkbudget.kv_engine`), the CPU's
  fast path for Llama, Qwen2 and Qwen3 models: every row keeps its cache for its whole life, a finished
  row's slot takes the next request at once. The hf backend's sampler, forcing rule and log-probability,
  token for token (tested against it).
- ``paged``: transformers continuous batching (paged KV cache, ``init_continuous_batching``), for GPUs.
  It accepts no custom logits processor, so budget forcing runs in rounds: generate until
  ``<think>``, then at most the remaining budget with ``</think>`` as a stop token, append
  ``</think>`` if the budget ran out, and continue. The result is the same token sequence rule as the
  processor's (``</think>`` forced right after ``B`` thinking tokens).
- ``vllm``: the same rounds on a vLLM engine, when ``vllm`` is importable and a GPU is present.

``auto`` picks vllm, then paged on a GPU; on a CPU cached where it runs the model, else hf.

The summed log-probability (best-of-N's default scorer) is the model's own distribution under hf and
cached (before temperature and top-p) and vllm (its default raw log-probabilities), and the sampling
distribution under paged (transformers returns log-probabilities of the processed logits); a forced
``</think>`` counts 0. Compare best-of-N across backends with that in mind.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from thinkbudget.forcing import ThinkingBudgetProcessor
from thinkbudget.parsing import get_parser
from thinkbudget.protocol import THINK_CLOSE, THINK_OPEN

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "cached", "hf", "paged", "vllm")


@dataclass(frozen=True)
class SamplingSettings:
    """Decoding settings shared by every backend (recorded in results.json)."""

    max_new_tokens: int = 512
    temperature: float = 0.6  # 0 = greedy decoding
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k filtering
    seed: int = 0

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def generation_config(self, tokenizer: Any) -> GenerationConfig:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if self.do_sample:
            # Explicit values: an unset (None) one would be filled from the model's generation_config or
            # transformers' defaults (top_k=50), which results.json would not show. top_k=0 = off.
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        return GenerationConfig(**kwargs)


def sample_seed(seed: int, key: str) -> int:
    """The sampling seed of one sample: a hash of the run's seed and the sample's key (condition,
    problem, sample index), so a sample's answer depends on nothing else."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") >> 2


@dataclass(frozen=True)
class GenerationRequest:
    """One completion to generate. ``prompt_ids`` is the whole prompt, pre-filled tokens included;
    ``force_budget`` (tokens) forces ``</think>`` after that many thinking tokens (None = never)."""

    prompt_ids: list[int]
    force_budget: int | None = None
    seed: int | None = None  # this sample's own sampling seed (hf backend); None = from the global RNG


@dataclass
class GenerationResult:
    """Generated token ids (up to and including end-of-sequence, never padding)."""

    token_ids: list[int]
    finish_reason: str  # "stop" (end-of-sequence) or "length" (hit max_new_tokens)
    logprob_sum: float | None = None  # summed log-probabilities of the generated tokens, if known
    forced: bool = False  # True when </think> was forced by the budget

    @property
    def mean_logprob(self) -> float | None:
        if self.logprob_sum is None or not self.token_ids:
            return None
        return self.logprob_sum / len(self.token_ids)


@dataclass
class Generator:
    """Base class: subclasses implement :meth:`generate` for one batch of requests."""

    tokenizer: Any
    sampling: SamplingSettings
    name: str = "base"
    default_batch_size: int = 16
    stop_ids: set[int] = field(init=False, default_factory=set)  # end-of-sequence ids

    def __post_init__(self) -> None:
        self.stop_ids = {i for i in (self.tokenizer.eos_token_id,) if i is not None}

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        raise NotImplementedError

    def close(self) -> None:
        """Free the engine (the model stays owned by the caller)."""

    def _finish(self, ids: list[int]) -> tuple[list[int], str]:
        """Cut generated ids after the first end-of-sequence token (padding follows it)."""
        for k, i in enumerate(ids):
            if i in self.stop_ids:
                return ids[: k + 1], "stop"
        return ids, "length"


# ------------------------------------------------------------------------------------------------
# hf: plain batched model.generate
# ------------------------------------------------------------------------------------------------
class _LogprobRecorder(LogitsProcessor):
    """Records the log-probability of each generated token. A processor sees the scores of step t
    and, at step t+1, the token chosen at step t; the last token is collected by :meth:`finish`.
    It runs after budget forcing and before temperature/top-p, so a forced token counts 0 and the
    others count their probability under the model (not the sampling) distribution."""

    def __init__(self) -> None:
        self.pending: torch.Tensor | None = None
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._collect(input_ids[:, -1])
        self.pending = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def _collect(self, chosen: torch.Tensor) -> None:
        if self.pending is not None:
            self.steps.append(self.pending.gather(1, chosen[:, None].to(self.pending.device))[:, 0].cpu())
            self.pending = None

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        """(batch, generated steps) log-probabilities."""
        self._collect(sequences[:, -1])
        return torch.stack(self.steps, dim=1) if self.steps else torch.zeros(sequences.shape[0], 0)


def _warp(scores: torch.Tensor, settings: SamplingSettings) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The sampling distribution's logits: temperature, then top-k, then top-p, as transformers orders
    them. Returns (logits, column index) where the columns were cut to the top k or sorted (index None
    when they are the vocabulary's own)."""
    s = scores.float() / settings.temperature
    k = settings.top_k
    if k and k < s.shape[-1]:
        # Only the k best tokens can be drawn: top-p and the draw work on those k columns (sorted by
        # topk) instead of sorting and normalising the whole vocabulary at every step.
        s, idx = torch.topk(s, k, dim=-1)
    else:
        s, idx = torch.sort(s, descending=True, dim=-1) if settings.top_p < 1.0 else (s, None)
    if settings.top_p < 1.0:  # s is sorted, best first
        p = s.softmax(dim=-1)
        drop = p.cumsum(dim=-1) - p >= settings.top_p  # keep the token that crosses top_p
        s = s.masked_fill(drop, -math.inf)
    return s, idx


class _SeededSampler(LogitsProcessor):
    """Samples each row's next token with the row's own ``torch.Generator`` (temperature, then top-k,
    then top-p, as transformers orders them) and leaves only that token possible, so that greedy
    decoding picks it. A sample's tokens then depend on its own seed only, not on which other samples
    share its batch, so a resumed or re-batched evaluation writes the same answers (up to the
    floating-point noise of a different batch shape)."""

    def __init__(self, generators: Sequence[torch.Generator], settings: SamplingSettings):
        self.generators = list(generators)
        self.settings = settings

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        s, idx = _warp(scores, self.settings)
        probs = s.softmax(dim=-1).cpu()
        picked = torch.tensor(
            [int(torch.multinomial(q, 1, generator=g)) for q, g in zip(probs, self.generators)]
        )
        chosen = picked if idx is None else idx.cpu()[torch.arange(len(picked)), picked]
        out = torch.full_like(scores, torch.finfo(scores.dtype).min)
        out[torch.arange(len(chosen)), chosen.to(scores.device)] = 0.0
        return out


class _RowStop(StoppingCriteria):
    """Per-row stop: end-of-sequence or the row's own token limit. With ``refill`` (requests waiting),
    the whole batch stops once ``refill`` rows are done, so that finished rows do not idle beside the
    longest one: the rest continue in the next batch, beside new requests. ``lengths[row]`` is how
    many tokens the row really generated (what follows is padding, which may equal end-of-sequence)."""

    def __init__(self, width: int, limits: Sequence[int], stop_ids: set[int], refill: int | None):
        self.width = width
        self.limits = torch.tensor(list(limits))
        self.stop_ids = torch.tensor(sorted(stop_ids))
        self.refill = refill
        self.lengths: list[int | None] = [None] * len(limits)

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        gen = input_ids[:, self.width :].cpu()
        n = gen.shape[1]
        done = torch.isin(gen[:, -1], self.stop_ids) | (n >= self.limits)
        for row in done.nonzero()[:, 0].tolist():
            if self.lengths[row] is None:
                self.lengths[row] = n
        stopped = torch.tensor([x is not None for x in self.lengths])
        if self.refill is not None and int(stopped.sum()) >= self.refill:
            self.lengths = [n if x is None else x for x in self.lengths]
            stopped[:] = True
        return stopped.to(input_ids.device)


def _sample_rng(sampling: SamplingSettings, request: GenerationRequest) -> torch.Generator | None:
    """The request's own sampling generator (None for greedy decoding)."""
    if not sampling.do_sample:
        return None
    seed = request.seed if request.seed is not None else int(torch.randint(0, 2**62, (1,)))
    return torch.Generator().manual_seed(seed)


@dataclass
class _Slot:
    """One request in flight: what it has generated so far and its sampling state."""

    index: int
    request: GenerationRequest
    rng: torch.Generator | None
    gen: list[int] = field(default_factory=list)
    logprob: float = 0.0
    forced: bool = False


@dataclass
class HFGenerator(Generator):
    """Batched ``model.generate`` with left padding, refilled as rows finish; budget forcing by logits
    processor; per-sample seeded sampling (:class:`_SeededSampler`).

    ``generate`` takes any number of requests and keeps ``batch_rows`` of them in flight. A batch
    stops once ``refill_share`` of its rows are done; the unfinished ones continue from their
    tokens so far in the next batch, filled up with new requests. On a CPU that keeps the
    batch full instead of decoding padding beside the one long row (``results/cpu-speed.md``).
    Continuing a row re-reads its tokens (one prefill), which costs far less than idling.
    """

    model: Any = None
    cache_implementation: str | None = None  # e.g. "static" on a GPU
    batch_rows: int = 64  # rows in flight; on 2 CPU cores bf16 throughput still grows up to ~128
    refill_share: float = 0.75
    name: str = "hf"
    default_batch_size: int = 64

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        limit = self.sampling.max_new_tokens
        queue = [_Slot(i, r, self._rng(r)) for i, r in enumerate(requests)]
        queue.reverse()  # pop() from the end keeps the caller's order
        active: list[_Slot] = []
        results: list[GenerationResult | None] = [None] * len(requests)
        while queue or active:
            while queue and len(active) < self.batch_rows:
                active.append(queue.pop())
            refill = max(1, int(self.refill_share * len(active))) if queue else None
            self._run(active, limit, refill)
            still = []
            for slot in active:
                ids = slot.gen
                if (ids and ids[-1] in self.stop_ids) or len(ids) >= limit:
                    reason = "stop" if ids and ids[-1] in self.stop_ids else "length"
                    results[slot.index] = GenerationResult(ids, reason, slot.logprob, slot.forced)
                else:
                    still.append(slot)
            active = still
        return [r for r in results if r is not None]

    def _rng(self, request: GenerationRequest) -> torch.Generator | None:
        return _sample_rng(self.sampling, request)

    def _run(self, slots: list[_Slot], limit: int, refill: int | None) -> None:
        """One ``model.generate`` call over ``slots``; extends each slot's tokens (padding removed)."""
        pad = self.tokenizer.pad_token_id
        seqs = [list(s.request.prompt_ids) + s.gen for s in slots]
        width = max(len(x) for x in seqs)
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in seqs])
        attention_mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in seqs])
        processors = LogitsProcessorList()
        forcing = None
        if any(s.request.force_budget is not None for s in slots):
            forcing = ThinkingBudgetProcessor(
                self.tokenizer,
                budgets=[s.request.force_budget for s in slots],
                generated_before=[len(s.gen) for s in slots],
            )
            processors.append(forcing)
        recorder = _LogprobRecorder()
        processors.append(recorder)
        config = self.sampling.generation_config(self.tokenizer)
        if self.sampling.do_sample:  # our sampler draws; greedy decoding then takes its token
            config = GenerationConfig(
                max_new_tokens=config.max_new_tokens,
                do_sample=False,
                eos_token_id=config.eos_token_id,
                pad_token_id=config.pad_token_id,
            )
            processors.append(_SeededSampler([s.rng for s in slots], self.sampling))
        config.max_new_tokens = max(limit - len(s.gen) for s in slots)
        if self.cache_implementation:
            config.cache_implementation = self.cache_implementation
        stop = _RowStop(width, [limit - len(s.gen) for s in slots], self.stop_ids, refill)
        device = self.model.device
        with torch.inference_mode():
            sequences = self.model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=config,
                logits_processor=processors,
                stopping_criteria=StoppingCriteriaList([stop]),
            )
        generated = sequences[:, width:].cpu()
        logprobs = recorder.finish(sequences)
        fired_at = forcing.fired_at if forcing is not None else {}
        for row, slot in enumerate(slots):
            n = stop.lengths[row] if stop.lengths[row] is not None else generated.shape[1]
            ids = generated[row, :n].tolist()
            slot.logprob += float(logprobs[row, :n].sum()) if logprobs.shape[1] >= n else 0.0
            slot.gen.extend(ids)
            # forced while the row was still generating (not on the padding after its end)
            slot.forced = slot.forced or fired_at.get(row, n) < n


# ------------------------------------------------------------------------------------------------
# cached: continuous batching over a preallocated KV cache (the CPU's fast path)
# ------------------------------------------------------------------------------------------------
@dataclass
class _Row:
    """One request in a slot of the engine: its tokens so far and its sampling and forcing state."""

    index: int
    request: GenerationRequest
    rng: torch.Generator | None
    scanner: Any = None  # a ThinkScanner for rows with a forcing budget
    gen: list[int] = field(default_factory=list)
    logprob: float = 0.0
    forced: bool = False


def _draw(scores: torch.Tensor, sampling: SamplingSettings) -> torch.Tensor:
    """One token per row from torch's global generator, as ``model.generate`` samples (the same warp
    as :class:`_SeededSampler`), one ``multinomial`` for the batch."""
    s, idx = _warp(scores, sampling)
    picked = torch.multinomial(s.softmax(dim=-1), 1)
    return (picked if idx is None else idx.gather(1, picked))[:, 0]


def _common_prefix(prompts: Sequence[Sequence[int]]) -> list[int]:
    """The longest prefix of every prompt that leaves each at least one token of its own."""
    first = prompts[0]
    n = min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
    return list(first[: max(n, 0)])


@dataclass
class CachedGenerator(Generator):
    """Continuous batching over a preallocated KV cache (:class:`thinkbudget.kv_engine.KVEngine`).

    ``batch_rows`` sequences are in flight; a finished one frees its slot at once and, once
    ``refill_rows`` slots are free, waiting requests are prefilled into them together. Sampling, the
    log-probability and budget forcing follow :class:`HFGenerator`'s rules token for token (the same
    per-sample seeded sampler, the processor's forcing rule, the model's log-probability after
    forcing), so a sample's tokens depend on its seed, not on its batch, up to floating-point noise.
    Requests without a seed (GRPO's rollouts) are drawn together from torch's global generator.
    For the architectures in :data:`thinkbudget.kv_engine.SUPPORTED`; ``hf`` runs any model.
    """

    model: Any = None
    batch_rows: int = 64  # sequences in flight
    refill_rows: int | None = None  # prefill waiting requests once this many slots are free (None: 1/8)
    min_shared_prefix: int = 8  # tokens: a prefix all prompts share is read once from this length on
    name: str = "cached"
    default_batch_size: int = 64
    # The engines' counters summed over every stream (KVEngine.stats: prompt positions read and decoding
    # steps, each with its seconds): an evaluation writes them to results.json.
    engine_stats: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        from thinkbudget.kv_engine import check_supported

        check_supported(self.model)  # refuses an unsupported architecture before any work
        self.parser = get_parser(self.tokenizer)
        self.open_id = self.tokenizer.convert_tokens_to_ids(THINK_OPEN)
        self.close_id = self.tokenizer.convert_tokens_to_ids(THINK_CLOSE)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(requests)
        for i, result in self.stream(requests):
            results[i] = result
        return [r for r in results if r is not None]

    def stream(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, GenerationResult]]:
        """(request index, result) as each request finishes. Handing a whole evaluation to one stream
        keeps the slots full to its end: separate calls each end with a tail of a few long rows
        decoded nearly alone, where a step costs almost as much as a full one."""
        from thinkbudget.kv_engine import KVEngine

        if any(not r.prompt_ids for r in requests):
            raise ValueError("a generation request has an empty prompt")
        limit = self.sampling.max_new_tokens
        slots = min(self.batch_rows, len(requests))
        engine = KVEngine(self.model, slots, max(len(r.prompt_ids) for r in requests) + limit)
        refill_at = self.refill_rows or max(1, slots // 8)
        prefix = _common_prefix([r.prompt_ids for r in requests])
        if len(prefix) >= self.min_shared_prefix:  # the system prompt every request shares: read once
            engine.set_prefix(prefix)
        if not requests:
            return
        try:
            yield from self._run(engine, requests, slots, refill_at, limit)
        finally:
            for k, v in engine.stats.items():
                self.engine_stats[k] = self.engine_stats.get(k, 0) + v

    def _run(
        self, engine: Any, requests: Sequence[GenerationRequest], slots: int, refill_at: int, limit: int
    ) -> Iterator[tuple[int, GenerationResult]]:
        """The loop of :meth:`stream`: refill free slots from the queue, else decode one step."""
        from collections import deque

        from thinkbudget.parsing import ThinkScanner

        queue = deque(enumerate(requests))
        live: list[_Row] = []  # live[j] is in slot j; its last token is chosen, not yet read
        while queue or live:
            free = slots - len(live)
            if queue and (free >= refill_at or not live):
                new = [queue.popleft() for _ in range(min(free, len(queue)))]
                rows = []
                for i, r in new:
                    scanner = None
                    if r.force_budget is not None:
                        scanner = ThinkScanner(self.parser, prefilled=r.prompt_ids[-1] == self.open_id)
                    rng = _sample_rng(self.sampling, r) if r.seed is not None else None
                    rows.append(_Row(i, r, rng, scanner))
                logits = engine.prefill(
                    list(range(len(live), len(live) + len(rows))), [r.request.prompt_ids for r in rows]
                )
                live.extend(rows)
                with torch.inference_mode():
                    self._choose(rows, logits)
            else:
                logits = engine.step(torch.tensor([row.gen[-1] for row in live]))
                with torch.inference_mode():
                    self._choose(live, logits)
            done = [(row.gen[-1] in self.stop_ids) or len(row.gen) >= limit for row in live]
            if not any(done):
                continue
            finished = [row for row, d in zip(live, done) if d]
            # Pack the rows still going at the front: rows from the tail move into the holes.
            n = len(live) - len(finished)
            holes = [j for j in range(n) if done[j]]
            tails = [j for j in range(n, len(live)) if not done[j]]
            for hole, tail in zip(holes, tails):
                engine.move(tail, hole)
                live[hole] = live[tail]
            live = live[:n]
            for row in finished:
                reason = "stop" if row.gen[-1] in self.stop_ids else "length"
                yield row.index, GenerationResult(row.gen, reason, row.logprob, row.forced)

    def _choose(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Choose each row's next token from its logits: forcing, log-probability, then the draw."""
        from thinkbudget.forcing import budget_spent, force_token

        scores = logits
        forced = []
        for j, row in enumerate(rows):  # ThinkingBudgetProcessor's rule, row by row
            budget = row.request.force_budget
            if budget is not None and budget_spent(row.scanner, row.gen, budget):
                force_token(scores, j, self.close_id)
                forced.append(j)
        logprobs = torch.log_softmax(scores, dim=-1)
        if self.sampling.do_sample and all(row.rng is None for row in rows):
            picked = _draw(scores, self.sampling)  # unseeded rows (GRPO): one draw for the batch
        elif self.sampling.do_sample:
            picked = _SeededSampler([row.rng for row in rows], self.sampling)(None, scores).argmax(-1)
        else:
            picked = scores.argmax(-1)
        chosen_lp = logprobs.gather(1, picked[:, None])[:, 0].tolist()
        for j, (row, token) in enumerate(zip(rows, picked.tolist())):
            row.gen.append(token)
            row.logprob += chosen_lp[j]
        for j in forced:
            rows[j].forced = True


# ------------------------------------------------------------------------------------------------
# Budget forcing in rounds, for engines that take stop tokens but no custom logits processor
# ------------------------------------------------------------------------------------------------
# A step function generates, for each (prompt ids, max new tokens, stop token ids), the new ids
# (a stop token included when it ended generation) and their summed log-probability (or None).
StepFn = Callable[[list[tuple[list[int], int, set[int]]]], list[tuple[list[int], float | None]]]


@dataclass
class _RoundState:
    prompt: list[int]
    budget: int | None
    gen: list[int] = field(default_factory=list)
    logprob: float | None = 0.0
    forced: bool = False
    finish: str | None = None


def generate_in_rounds(
    step: StepFn,
    requests: Sequence[GenerationRequest],
    *,
    open_id: int,
    close_id: int,
    stop_ids: set[int],
    max_new_tokens: int,
    parser: Any = None,
) -> list[GenerationResult]:
    """Generate with budget forcing by stop tokens: the rule of
    :class:`~thinkbudget.forcing.ThinkingBudgetProcessor` (once a row's thinking reaches the budget,
    ``</think>`` is the next token), applied between engine calls instead of per token.

    With ``parser`` (a :class:`~thinkbudget.parsing.CompletionParser`; the generators pass theirs)
    thinking is counted by the parser's own rule (:class:`~thinkbudget.parsing.ThinkScanner`: text
    before ``<think>`` counts), so a forced row parses as exactly the budget, as with the processor.
    Without it, the plain id rule: tokens after the first ``<think>`` id, or all of them when the
    prompt ends with ``<think>``. Tags written as sub-word pieces do not stop an engine call (only
    single ids are stop tokens), so such a row is checked at the end of the call."""
    rows = [_RoundState(list(r.prompt_ids), r.force_budget) for r in requests]
    while True:
        calls: list[tuple[int, int, set[int]]] = []
        for k, row in enumerate(rows):
            if row.finish is None:
                plan = _next_round(row, open_id, close_id, stop_ids, max_new_tokens, parser)
                if plan is not None:
                    calls.append((k, *plan))
        if not calls:
            break
        outputs = step([(rows[k].prompt + rows[k].gen, n, stops) for k, n, stops in calls])
        for (k, _, _), (new_ids, lp) in zip(calls, outputs):
            row = rows[k]
            row.gen.extend(new_ids)
            row.logprob = None if (lp is None or row.logprob is None) else row.logprob + lp
            if not new_ids:  # the engine produced nothing: stop rather than loop
                row.finish = "length"
    return [GenerationResult(r.gen, r.finish or "length", r.logprob, r.forced) for r in rows]


def _next_round(
    row: _RoundState,
    open_id: int,
    close_id: int,
    stop_ids: set[int],
    max_new_tokens: int,
    parser: Any = None,
) -> tuple[int, set[int]] | None:
    """(max new tokens, stop ids) of the row's next engine call, or None once it is finished.
    Appends a forced ``</think>`` when the thinking budget is spent."""
    while True:
        if row.gen and row.gen[-1] in stop_ids:
            row.finish = "stop"
            return None
        remaining = max_new_tokens - len(row.gen)
        if remaining <= 0:
            row.finish = "length"
            return None
        if row.budget is None or close_id in row.gen:  # as the processor: a closed block is never forced
            return remaining, stop_ids
        prefilled = bool(row.prompt) and row.prompt[-1] == open_id
        if parser is not None:
            from thinkbudget.parsing import ThinkScanner

            scanner = ThinkScanner(parser, prefilled=prefilled)
            scanner.feed(row.gen)
            if scanner.closed:
                return remaining, stop_ids
            thinking = scanner.thinking
            if thinking is None:  # not thinking yet: stop at <think> to start counting
                return remaining, stop_ids | {open_id}
        elif prefilled or open_id in row.gen:
            thinking = len(row.gen) - (row.gen.index(open_id) if not prefilled else -1) - 1
        else:  # not thinking yet: stop at <think> to start counting
            return remaining, stop_ids | {open_id}
        if thinking < row.budget:
            return min(remaining, row.budget - thinking), stop_ids | {close_id}
        row.gen.append(close_id)  # the budget is spent: force the end of thinking (log-prob 0)
        row.forced = True


@dataclass
class RoundsGenerator(Generator):
    """Engines that take no custom logits processor (paged, vLLM): budget forcing runs as rounds of
    generation with stop tokens (:func:`generate_in_rounds`); subclasses implement ``_step``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.open_id = self.tokenizer.convert_tokens_to_ids(THINK_OPEN)
        self.close_id = self.tokenizer.convert_tokens_to_ids(THINK_CLOSE)

    def _step(self, calls: list[tuple[list[int], int, set[int]]]) -> list[tuple[list[int], float | None]]:
        raise NotImplementedError

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return generate_in_rounds(
            self._step,
            requests,
            open_id=self.open_id,
            close_id=self.close_id,
            stop_ids=self.stop_ids,
            max_new_tokens=self.sampling.max_new_tokens,
            parser=get_parser(self.tokenizer),
        )


# ------------------------------------------------------------------------------------------------
# paged: transformers continuous batching
# ------------------------------------------------------------------------------------------------
@dataclass
class PagedGenerator(RoundsGenerator):
    """transformers continuous batching (paged attention); one manager for the generator's life."""

    model: Any = None
    name: str = "paged"
    default_batch_size: int = 1024
    num_blocks: int | None = None  # KV-cache blocks; None = sized from free GPU memory
    max_batch_tokens: int | None = None  # tokens per forward pass; None = sized from free GPU memory
    manager: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        from dataclasses import fields

        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        on_cpu = self.model.device.type == "cpu"
        # On a CPU the memory-based sizing allocates gigabytes; small fixed sizes keep tests fast.
        wanted = {
            "return_logprobs": True,
            "seed": self.sampling.seed,
            "num_blocks": self.num_blocks or (64 if on_cpu else None),
            "max_batch_tokens": self.max_batch_tokens or (512 if on_cpu else None),
            "page_size": 64 if on_cpu else 256,
        }
        # Only the fields this transformers version has (written against 5.23; GPU images may be older).
        known = {f.name for f in fields(ContinuousBatchingConfig)}
        cb_config = ContinuousBatchingConfig(**{k: v for k, v in wanted.items() if k in known})
        gen_config = self.sampling.generation_config(self.tokenizer)
        try:
            self.manager = self.model.init_continuous_batching(
                generation_config=gen_config, continuous_batching_config=cb_config
            )
        except TypeError:  # older transformers read the config from the generation config
            gen_config.continuous_batching_config = cb_config
            self.manager = self.model.init_continuous_batching(generation_config=gen_config)
        if not on_cpu:
            self.manager.warmup()
        self.manager.start()

    def _step(self, calls: list[tuple[list[int], int, set[int]]]) -> list[tuple[list[int], float | None]]:
        ids = [
            self.manager.add_request(prompt, max_new_tokens=n, eos_token_id=sorted(stops))
            for prompt, n, stops in calls
        ]
        done: dict[str, Any] = {}
        while len(done) < len(ids):
            result = self.manager.get_result(timeout=1)
            if result is None:
                if not self.manager.is_running():
                    raise RuntimeError("the continuous-batching generation thread stopped unexpectedly")
                continue
            if result.is_finished():
                if result.error is not None:
                    raise RuntimeError(
                        f"continuous batching failed on request {result.request_id}: {result.error}"
                    )
                done[result.request_id] = result
        out = []
        for rid in ids:
            r = done[rid]
            lp = float(sum(r.logprobs)) if len(r.logprobs) == len(r.generated_tokens) else None
            out.append((list(r.generated_tokens), lp))
        return out

    def close(self) -> None:
        if self.manager is not None:
            self.manager.stop(block=True, timeout=10)
            self.model.destroy_cached_continuous_batching_manager()
            self.manager = None


# ------------------------------------------------------------------------------------------------
# vllm
# ------------------------------------------------------------------------------------------------
@dataclass
class VLLMGenerator(RoundsGenerator):
    """A vLLM engine over the checkpoint at ``model_path`` (prompts go in as token ids)."""

    model_path: str = ""
    name: str = "vllm"
    default_batch_size: int = 4096
    gpu_memory_utilization: float = 0.85
    dtype: str = "auto"
    llm: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        from vllm import LLM

        self.llm = LLM(
            model=self.model_path,
            dtype=self.dtype,
            seed=self.sampling.seed,
            gpu_memory_utilization=self.gpu_memory_utilization,
            enable_prefix_caching=True,  # the rounds of budget forcing re-send their prefix
        )

    def _step(self, calls: list[tuple[list[int], int, set[int]]]) -> list[tuple[list[int], float | None]]:
        from vllm import SamplingParams

        s = self.sampling
        params = [
            SamplingParams(
                max_tokens=n,
                temperature=s.temperature,
                top_p=s.top_p if s.do_sample else 1.0,
                top_k=(s.top_k or -1) if s.do_sample else -1,
                stop_token_ids=sorted(stops),
                logprobs=0,  # the sampled token's log-probability only
            )
            for _, n, stops in calls
        ]
        outputs = self.llm.generate([{"prompt_token_ids": p} for p, _, _ in calls], params, use_tqdm=False)
        out = []
        for o in outputs:
            c = o.outputs[0]
            ids = list(c.token_ids)
            # A stop token ends the output; make sure it is part of it (as with end-of-sequence).
            if (
                c.finish_reason == "stop"
                and isinstance(c.stop_reason, int)
                and (not ids or ids[-1] != c.stop_reason)
            ):
                ids.append(c.stop_reason)
            out.append((ids, c.cumulative_logprob))
        return out

    def close(self) -> None:
        import gc

        self.llm = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------
# Choosing and building a backend
# ------------------------------------------------------------------------------------------------
def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def resolve_backend(backend: str, model: Any = None) -> str:
    """The concrete backend for ``backend``. ``auto``: vllm, then paged on a GPU; on a CPU ``cached``
    for the architectures it runs (any, while ``model`` is not known yet), else hf."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    gpu = torch.cuda.is_available()
    if backend == "auto":
        if gpu:
            return "vllm" if vllm_available() else "paged"
        from thinkbudget.kv_engine import supports

        return "cached" if model is None or supports(model) else "hf"
    if backend == "vllm" and not vllm_available():
        raise ValueError("backend 'vllm' needs the vllm package (pip install 'thinkbudget[vllm]')")
    return backend


def build_generator(
    backend: str,
    *,
    model: Any,
    tokenizer: Any,
    sampling: SamplingSettings,
    model_path: str | None = None,
    cache_implementation: str | None = None,
    dtype: str = "auto",
    batch_rows: int | None = None,
) -> Generator:
    """A ready generator. ``model`` is the loaded HF model (unused by vllm, which loads ``model_path``).
    ``auto`` is resolved here, with the model in hand; the generator's ``name`` is the backend it runs."""
    backend = resolve_backend(backend, model)
    if backend == "cached":
        return CachedGenerator(
            tokenizer, sampling, model=model, batch_rows=batch_rows or CachedGenerator.batch_rows
        )
    if backend == "hf":
        return HFGenerator(
            tokenizer,
            sampling,
            model=model,
            cache_implementation=cache_implementation,
            batch_rows=batch_rows or HFGenerator.batch_rows,
        )
    if backend == "paged":
        return PagedGenerator(tokenizer, sampling, model=model)
    if model_path is None:
        raise ValueError("the vllm backend needs model_path")
    return VLLMGenerator(tokenizer, sampling, model_path=model_path, dtype=dtype)


def generate_all(
    generator: Generator, requests: Sequence[GenerationRequest], batch_size: int | None = None
) -> tuple[list[GenerationResult], float]:
    """Generate every request in batches sorted by prompt length; returns results in input order and
    the seconds spent."""
    batch_size = batch_size or generator.default_batch_size
    order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids))
    results: list[GenerationResult | None] = [None] * len(requests)
    start = time.perf_counter()
    for lo in range(0, len(order), batch_size):
        chunk = order[lo : lo + batch_size]
        for i, res in zip(chunk, generator.generate([requests[i] for i in chunk])):
            results[i] = res
    return [r for r in results if r is not None], time.perf_counter() - start
