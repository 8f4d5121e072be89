"""The GRPO stage's configuration, trainer and checks (``train/rl.py`` is built from these pieces).

Three dataclasses, filled by :func:`thinkbudget.run_folders.parse_config` from one recipe YAML:

- :class:`RLScriptArguments`: the prepared dataset (``dataset_path``; the mix itself is the data
  stage's), the reward names and their parameters (:class:`thinkbudget.rewards.RewardParams`), and
  ``budget_forcing_rollouts``.
- :class:`ThinkGRPOConfig`: TRL's ``GRPOConfig`` with this project's defaults.
- :class:`RLModelConfig`: TRL's ``ModelConfig`` (alias, hub id or path; LoRA with ``use_peft``).

Prompts are pre-rendered strings, one per row, because TRL's ``chat_template_kwargs`` is global to a
run while each row here has its own mode and budget. TRL 1.16 passes string prompts straight to the
tokenizer (``GRPOTrainer._tokenize_prompts``: ``processing_class(text=prompts)``, no chat template
applied), so the rendered text is exactly what the policy sees.

:class:`ThinkBudgetGRPOTrainer` adds to TRL's ``GRPOTrainer``:

- rollouts from a bf16 copy of the policy when training in bf16 on a CPU (refreshed every call), decoded
  by the cached engine (:mod:`thinkbudget.kv_engine`, ``rollout_backend``: continuous batching over a
  preallocated KV cache, the group's prompt read once) where it runs the model;
- budget-constrained rollouts (Elastic Reasoning): with ``budget_forcing_rollouts`` the
  :class:`~thinkbudget.forcing.ThinkingBudgetProcessor` forces ``</think>`` once a row has used the
  budget stated in its prompt, then the model writes its answer. TRL's transformers generation path
  calls ``unwrapped_model.generate(**inputs, generation_config=...)`` with no way to pass a logits
  processor, so for the duration of one rollout the unwrapped model's ``generate`` is wrapped to add
  one (a fresh processor per call: it reads each row's budget from that call's prompts);
- AdaptThink's sampling of auto mode's decision (:mod:`thinkbudget.decision`, ``auto_decision_sampling``):
  in each group of an auto prompt, half the rollouts start with the empty block and half with a trace
  (``<think>`` and the decision token are forced, the rest is sampled), and the loss takes the decision
  token's old probability as 1/2, so PPO's ratio is the importance weight; the policy's own probability
  of thinking is logged per difficulty (``auto/p_think``, ``auto/p_think/<bin>``);
- per-step metrics: accuracy, thinking tokens and within-budget share per budget, no-think
  compliance, answer tokens, forced-rollout share, and generation vs scoring time;
- run totals for ``run_summary.json`` (generation / scoring / whole-step seconds, generated tokens).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import LogitsProcessorList, PreTrainedTokenizerBase, TrainerCallback
from trl import GRPOConfig, GRPOTrainer, ModelConfig

from thinkbudget import decision, head
from thinkbudget.auto import DEFAULT_EDGES, bin_index
from thinkbudget.data import DatasetArguments
from thinkbudget.forcing import ThinkingBudgetProcessor
from thinkbudget.hardware import OutputHeadArguments, ReleaseFreedMemory, autocast_without_weight_cache
from thinkbudget.rewards import (
    REWARDS,
    ROW_COLUMNS,
    RewardParams,
    check_reward_names,
    completion_stats,
    row_mode,
)
from thinkbudget.run_folders import RunFolderArguments

logger = logging.getLogger(__name__)

DEFAULT_REWARDS = ["correctness", "format", "mode_compliance", "l1_max"]


@dataclass
class RLScriptArguments(DatasetArguments, RewardParams):
    """The prepared dataset, the rewards (names and parameters) and the rollout option of the GRPO stage."""

    reward_funcs: list[str] = field(
        default_factory=lambda: list(DEFAULT_REWARDS),
        metadata={
            "help": f"Reward names (thinkbudget.rewards.REWARDS): {', '.join(REWARDS)}. "
            "Weights go in reward_weights (one per name)."
        },
    )
    budget_forcing_rollouts: bool = field(
        default=False,
        metadata={
            "help": "Elastic Reasoning's budget-constrained rollouts (true/false): force </think> once a row "
            "has used its budget (tokens), then let it answer. transformers generation only."
        },
    )
    auto_decision_sampling: bool = field(
        default=True,
        metadata={
            "help": "AdaptThink's importance sampling of auto rows' decision (true/false): half of each auto "
            "group is forced to answer without thinking, half to think, and the decision token's loss is "
            "weighted by pi/0.5. False samples the decision on-policy. No effect without auto rows."
        },
    )

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field (dataset path, reward names, reward parameters).

        Runs when the config is parsed (``__post_init__``): the one check of the reward names per launch
        (:func:`validate_run` and :func:`thinkbudget.rewards.get_reward_funcs` rely on it)."""
        DatasetArguments.validate(self)
        check_reward_names(self.reward_funcs)
        RewardParams.validate(self)

    def reward_params(self) -> RewardParams:
        """The reward parameters alone."""
        from dataclasses import fields

        return RewardParams(**{f.name: getattr(self, f.name) for f in fields(RewardParams)})


@dataclass
class ThinkGRPOConfig(RunFolderArguments, OutputHeadArguments, GRPOConfig):
    """TRL's ``GRPOConfig`` with defaults for length-controlled RL of a small hybrid-reasoning model."""

    output_dir: str | None = field(
        default="runs/rl/default",
        metadata={
            "help": "Folder for checkpoint-N folders, the final model, logs and run_summary.json (path)."
        },
    )
    learning_rate: float = field(default=2e-6, metadata={"help": "Peak learning rate of AdamW (per step)."})
    num_generations: int | None = field(
        default=8, metadata={"help": "Completions sampled per prompt, the GRPO group (count)."}
    )
    max_completion_length: int | None = field(
        default=384,
        metadata={"help": "Longest completion, thinking + answer (tokens); budgets must be below it."},
    )
    logging_steps: float = field(default=1, metadata={"help": "Log every N optimizer steps (steps)."})
    save_steps: float = field(
        default=50, metadata={"help": "Write a checkpoint-N every N optimizer steps (steps)."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of sampling, shuffling and LoRA init (integer)."})
    rollout_backend: str = field(
        default="auto",
        metadata={
            "help": "Rollouts without vLLM: cached (continuous batching over a preallocated KV cache, "
            "llama/qwen2/qwen3 models), hf (model.generate) or auto (cached on a CPU where it runs the "
            "model and the sampling settings, else hf)."
        },
    )
    length_grouped_micro_batches: bool = field(
        default=True,
        metadata={
            "help": "Cut each step's rollouts into micro-batches of similar length (prompt + completion tokens) "
            "and drop the padding columns no row of a micro-batch uses (true/false). The step's gradient is "
            "the same sum over the same rollouts; the forward and backward skip the padding that TRL's random "
            "micro-batches carry at the width of the longest rollout. Only when steps_per_generation equals "
            "gradient_accumulation_steps (one generation batch per optimizer step), for text models."
        },
    )


@dataclass
class RLModelConfig(ModelConfig):
    """TRL's ``ModelConfig``: the policy to start from (usually the SFT output) and the optional LoRA."""

    model_name_or_path: str | None = field(
        default="runs/sft/smollm2-135m",
        metadata={
            "help": "Policy to start from: an SFT output folder (path), an alias (smollm2-135m, tiny-llama) or a hub id."
        },
    )


# --------------------------------------------------------------------------------------------------
# Checks that run before anything loads
# --------------------------------------------------------------------------------------------------
# The configuration of train/rl.py (checked by the main job and the sweeps without loading the script).
CONFIG_CLASSES = (RLScriptArguments, ThinkGRPOConfig, RLModelConfig)


def validate_run(script_args: RLScriptArguments, training_args: ThinkGRPOConfig) -> None:
    """Cross-field checks of a recipe; raise ``ValueError`` naming the field. The fields' own checks ran
    when ``script_args`` was made (:meth:`RLScriptArguments.validate`); the rows' budgets are checked
    once the dataset loads (:func:`check_dataset_budgets`)."""
    if training_args.rollout_backend not in ROLLOUT_BACKENDS:
        raise ValueError(
            f"rollout_backend must be one of {', '.join(ROLLOUT_BACKENDS)}, got {training_args.rollout_backend!r}"
        )
    weights = training_args.reward_weights
    if weights is not None and len(weights) != len(script_args.reward_funcs):
        raise ValueError(
            f"reward_weights: {len(weights)} weights for {len(script_args.reward_funcs)} rewards "
            f"{script_args.reward_funcs}; give one weight per reward (or none for all 1.0)"
        )
    if weights is not None and any(not (isinstance(w, int | float) and math.isfinite(w)) for w in weights):
        raise ValueError(f"reward_weights: must be finite numbers, got {weights}")
    max_len = training_args.max_completion_length
    if max_len is None or max_len <= 0:
        raise ValueError(f"max_completion_length: must be a positive number of tokens, got {max_len!r}")
    if script_args.answer_cap is not None and script_args.answer_cap >= max_len:
        raise ValueError(
            f"answer_cap: {script_args.answer_cap} tokens must be below max_completion_length={max_len}"
        )
    check_forcing_backend(
        script_args.budget_forcing_rollouts,
        training_args.use_vllm,
        training_args.use_transformers_continuous_batching,
    )
    if "group_length" in script_args.reward_funcs:
        local = training_args.per_device_train_batch_size * (training_args.steps_per_generation or 1)
        if local % training_args.num_generations != 0:
            logger.warning(
                "group_length: %d rows per process per generation is not a multiple of num_generations=%d, so "
                "some groups are split across processes and ranked on part of their rows",
                local,
                training_args.num_generations,
            )


ROLLOUT_BACKENDS = ("auto", "cached", "hf")


def check_forcing_backend(budget_forcing_rollouts: bool, use_vllm: bool, paged: bool) -> None:
    """Budget-forced rollouts run a logits processor inside transformers' ``generate``: raise
    ``ValueError`` when the rollouts would come from vLLM or paged generation, which would ignore it."""
    if budget_forcing_rollouts and (use_vllm or paged):
        raise ValueError(
            "budget_forcing_rollouts: works with transformers generation only; set use_vllm and "
            "use_transformers_continuous_batching (alias use_transformers_paged) to false"
        )


def check_dataset_budgets(dataset: Any, max_completion_length: int) -> None:
    """Raise ``ValueError`` when a row's budget is not below ``max_completion_length``: the completion
    must leave room for ``</think>`` and the answer. The one budget check of a GRPO run, on the rows it
    trains on (the budgets are the data stage's)."""
    budgets = [b for b in dataset["budget"] if b is not None]
    if budgets and max(budgets) >= max_completion_length:
        raise ValueError(
            f"budget: the dataset holds budgets up to {max(budgets)} tokens, which do not fit "
            f"max_completion_length={max_completion_length} tokens (a budget must leave room for </think> "
            "and the answer); raise max_completion_length or prepare a mix with smaller budgets"
        )


def check_auto_rows(
    dataset: Any,
    auto_decision_sampling: bool,
    num_generations: int,
    use_vllm: bool,
    reward_funcs: Sequence[str],
) -> None:
    """Raise ``ValueError`` when the dataset's auto rows cannot be trained as configured: decision
    sampling splits each group into halves (``num_generations`` even) and forces tokens into the
    rollouts (not through vLLM); warn when auto rows train without ``no_think_bonus`` (then nothing
    prefers skipping a trace that costs no accuracy)."""
    if "auto" not in set(dataset["mode"]):
        return
    if auto_decision_sampling and num_generations % 2:
        raise ValueError(
            f"num_generations: auto_decision_sampling splits each group of an auto row into two halves "
            f"(thinking off / on), so it must be even, got {num_generations}; or set auto_decision_sampling: false"
        )
    if auto_decision_sampling and use_vllm:
        raise ValueError(
            "auto_decision_sampling: forces the decision token in rollouts by transformers generation or the "
            "cached engine, not vLLM; set use_vllm: false or auto_decision_sampling: false"
        )
    if "no_think_bonus" not in reward_funcs:
        logger.warning(
            "the dataset has auto rows but reward_funcs lacks no_think_bonus: nothing pays for not thinking"
        )


# --------------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------------
def rollout_metrics(stats: Sequence[dict[str, Any]]) -> list[tuple[str, float]]:
    """``(metric name, value)`` pairs, one per row and fact, from :func:`thinkbudget.rewards.completion_stats`.

    One pair per row (not a pre-averaged value) so that TRL's ``log_metric`` mean over all rows of all
    processes is the exact share/mean. Names: ``thinkbudget/accuracy`` (and ``.../think/accuracy``,
    ``.../no_think/accuracy``), ``thinkbudget/budget_<B>/{thinking_tokens,within_budget,accuracy}``,
    ``thinkbudget/no_budget/thinking_tokens``, ``thinkbudget/no_think/compliance``,
    ``thinkbudget/answer_tokens``, and ``.../at_target`` beside ``thinking_tokens`` where the row has a
    target granularity (the share of rollouts that write it). Auto rows count only in
    ``thinkbudget/auto/{thinks,think/accuracy,no_think/accuracy,within_budget_when_thinking}``.
    """
    out: list[tuple[str, float]] = []
    for s in stats:
        out.append(("thinkbudget/answer_tokens", float(s["answer_tokens"])))
        if s.get("auto"):  # the model's own choice (half forced under auto_decision_sampling)
            out.append(("thinkbudget/auto/thinks", float(s["mode"] == "think")))
            if s["correct"] is not None:
                out.append((f"thinkbudget/auto/{s['mode']}/accuracy", float(s["correct"])))
            if s["mode"] == "think" and s["budget"] is not None:
                out.append(("thinkbudget/auto/within_budget_when_thinking", float(s["within_budget"])))
            continue
        if s["correct"] is not None:
            out.append(("thinkbudget/accuracy", float(s["correct"])))
            out.append((f"thinkbudget/{s['mode']}/accuracy", float(s["correct"])))
        if s["mode"] == "no_think":
            out.append(("thinkbudget/no_think/compliance", float(s["no_think_compliant"])))
        elif s["budget"] is not None:
            bucket = f"thinkbudget/budget_{s['budget']}"
            out.append((f"{bucket}/thinking_tokens", float(s["thinking_tokens"])))
            out.append((f"{bucket}/within_budget", float(s["within_budget"])))
            if s["correct"] is not None:
                out.append((f"{bucket}/accuracy", float(s["correct"])))
        else:
            bucket = "thinkbudget/no_budget"
            out.append((f"{bucket}/thinking_tokens", float(s["thinking_tokens"])))
        if s["mode"] != "no_think" and s.get("at_target") is not None:
            out.append((f"{bucket}/at_target", float(s["at_target"])))
    return out


PROMPT_KEYS = ("prompt_ids", "prompt_mask")  # left-padded; every other per-token tensor is the completion's


def length_grouped_micro_batches(batch: dict[str, Any], num_chunks: int) -> list[dict[str, Any]]:
    """Split one generation batch into ``num_chunks`` micro-batches of rows of similar length, each
    trimmed to the columns its own rows use.

    TRL shuffles the batch and splits it at the full width: every micro-batch carries the prompt padding
    of the batch's longest prompt and the completion padding of its longest completion, so a step of
    short thinking-off answers and 200-token traces computes every row at 200 tokens. Here rows are
    ordered by prompt + completion tokens (``prompt_mask`` and ``completion_mask``), cut into equal
    chunks, and each chunk drops the leading prompt columns and trailing completion columns that are
    padding in all its rows. Per-row values (lists, 1-D tensors) follow their rows; scalars are shared;
    2-D tensors other than :data:`PROMPT_KEYS` are completion-aligned (TRL's convention:
    ``completion_ids``, ``completion_mask``, old / reference / sampling log-probabilities).

    Dropping all-padding columns changes no real position's output: right padding comes after every
    real token, and left padding shifts every row's positions by the same amount, which rotary
    embeddings do not see (relative positions; floating-point noise aside).
    """
    import torch

    prompt_mask, completion_mask = batch["prompt_mask"], batch["completion_mask"]
    rows = prompt_mask.size(0)
    if rows % num_chunks:
        raise ValueError(f"{rows} rollouts do not split into {num_chunks} equal micro-batches")
    lengths = prompt_mask.sum(dim=1) + completion_mask.sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    size = rows // num_chunks
    prompt_width, completion_width = prompt_mask.size(1), completion_mask.size(1)
    chunks = []
    for start in range(0, rows, size):
        index = order[start : start + size]
        used_prompt = prompt_mask[index].any(dim=0).nonzero()
        first = int(used_prompt[0]) if len(used_prompt) else prompt_width
        used_completion = completion_mask[index].any(dim=0).nonzero()
        end = int(used_completion[-1]) + 1 if len(used_completion) else 1
        chunk: dict[str, Any] = {}
        for key, value in batch.items():
            if value is None or (isinstance(value, torch.Tensor) and value.ndim == 0):
                chunk[key] = value
            elif not isinstance(value, torch.Tensor):
                chunk[key] = [value[i] for i in index.tolist()]
            else:
                value = value[index]
                if value.ndim >= 2 and key in PROMPT_KEYS:
                    if value.size(1) != prompt_width:
                        raise ValueError(f"{key} is {value.size(1)} columns wide, prompt_mask {prompt_width}")
                    value = value[:, first:]
                elif value.ndim >= 2 and value.size(1) == completion_width:
                    value = value[:, :end]
                chunk[key] = value
        chunks.append(chunk)
    return chunks


class ThinkBudgetGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with optional budget-forced rollouts, per-budget metrics and run timing."""

    def __init__(
        self,
        *args: Any,
        budget_forcing_rollouts: bool = False,
        auto_decision_sampling: bool = True,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        if self.args.use_cpu:  # bf16 copies of the weights are not kept through the forward pass
            autocast_without_weight_cache(self.accelerator)
        self.budget_forcing_rollouts = budget_forcing_rollouts
        self.auto_decision_sampling = auto_decision_sampling
        self._decision_tokens: decision.DecisionTokens | None = None
        self._branches: list[str | None] = []  # this generation batch's forced branches (set per batch)
        self._decision_inputs: dict[str, Any] | None = None  # the micro-batch whose loss is being computed
        self._bf16_rollout_model: Any = None
        self._lm_head_choice: str | None = None  # lm_head_loss resolved on the first inputs
        self._release_memory = ReleaseFreedMemory()
        # Grouped micro-batches (decided once): one generation batch per optimizer step, text only (a
        # multimodal processor's batches carry images, which keep TRL's split).
        asked = getattr(self.args, "length_grouped_micro_batches", False)
        one_batch_a_step = self.args.steps_per_generation == self.args.gradient_accumulation_steps
        text_only = isinstance(self.processing_class, PreTrainedTokenizerBase)
        self._grouped_micro_batches = asked and one_batch_a_step and text_only
        if asked and not self._grouped_micro_batches:
            logger.warning(
                "length_grouped_micro_batches applies to text models whose steps_per_generation (%s) equals "
                "gradient_accumulation_steps (%s): one generation batch per optimizer step; this run "
                "uses TRL's shuffled micro-batches",
                self.args.steps_per_generation,
                self.args.gradient_accumulation_steps,
            )
        # train/rl.py checks this before the model loads; a trainer built directly is checked here.
        check_forcing_backend(
            budget_forcing_rollouts, self.use_vllm, self.use_transformers_continuous_batching
        )
        # Totals of this process for run_summary.json.
        self.run_totals = {
            "generation_s": 0.0,
            "scoring_s": 0.0,
            "generated_tokens": 0,
            "rollouts": 0,
            "forced": 0,
        }

    def _prepare_inputs(self, generation_batch):
        """TRL's buffering of one generation batch per optimizer step, with micro-batches grouped by
        length and trimmed (:func:`length_grouped_micro_batches`) instead of shuffled at full width.
        The optimizer step sums the same rollouts' losses over the same normaliser, so only the padding
        it computes changes."""
        if not (self._grouped_micro_batches and self.model.training):
            return super()._prepare_inputs(generation_batch)
        chunks = self.args.steps_per_generation
        if self._step % (chunks * self.num_iterations) == 0 or self._buffered_inputs is None:
            batch = self._generate_and_score_completions(generation_batch)
            self._buffered_inputs = length_grouped_micro_batches(batch, chunks)
        return self._buffered_inputs[self._step % chunks]

    def _compute_loss(self, model, inputs):
        # A micro-batch with forced decisions: the forward inside TRL's loss sets their old log-probability
        # (see _decision_old_logps) before TRL reads ``old_per_token_logps``.
        self._decision_inputs = inputs if "decision_branch" in inputs else None
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._decision_inputs = None

    def _decision_old_logps(self, logps: Any) -> None:
        """AdaptThink's importance weight, through PPO's ratio: the forced decision token's old
        log-probability is log pi_IS = log 1/2 (every other token keeps its own, so its ratio stays 1).
        Also logs the policy's probability of thinking, read off the rows forced to the empty block,
        overall and per difficulty bin (``auto/p_think``, ``auto/p_think/<bin>``)."""
        inputs, self._decision_inputs = self._decision_inputs, None  # once: the loss's own forward
        if inputs is None:
            return
        branch, pos = inputs["decision_branch"].to(logps.device), self._decision_tokens.position
        old = inputs.get("old_per_token_logps")
        old = (logps.detach() if old is None else old).clone()
        old[branch >= 0, pos] = decision.IS_LOGP
        inputs["old_per_token_logps"] = old
        off = (branch == 0).nonzero().flatten().tolist()
        if not off or not self.model.training:
            return
        p = [decision.p_think(v) for v in logps[off, pos].detach().tolist()]
        self._metrics["train"]["auto/p_think"].append(sum(p) / len(p))
        bins = inputs["decision_bin"].tolist()
        labels = [f"le{e}" for e in DEFAULT_EDGES] + [f"gt{DEFAULT_EDGES[-1]}"]
        for b in sorted({bins[i] for i in off if bins[i] >= 0}):
            values = [v for i, v in zip(off, p) if bins[i] == b]
            self._metrics["train"][f"auto/p_think/{labels[b]}"].append(sum(values) / len(values))

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **extra,
    ):
        """Per-token log-probabilities (and entropies) of the completion tokens, by ``lm_head_loss``:
        ``chunked`` (the CPU default: the completion positions' head in chunks of the vocabulary,
        :mod:`thinkbudget.head`) or ``full_logits`` (one plain forward, ``logits_to_keep``). TRL's fused head
        scores every position, prompt included, and on a CPU (no Triton kernel) costs more than either.
        Same values as TRL's (tested): temperature-scaled, zero on padding. Images, MoE losses, ``fused``,
        and an entropy bonus that differentiates the entropy (chunked) use the paths that support them."""
        import torch

        choice = self._head_choice(model, input_ids, attention_mask)
        if choice == "fused" or compute_aux_loss or any(v is not None for v in extra.values()):
            out = super()._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size,
                compute_entropy,
                compute_aux_loss,
                **extra,
            )
            self._decision_old_logps(out[0])
            return out
        entropy_graph = compute_entropy and self._entropy_bonus_enabled and torch.is_grad_enabled()
        chunked = choice == "chunked" and not entropy_graph
        batch_size = batch_size or input_ids.size(0)
        all_logps, all_entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            ids, mask = input_ids[start : start + batch_size], attention_mask[start : start + batch_size]
            targets, valid = ids[:, -logits_to_keep:], mask[:, -logits_to_keep:].bool()
            if chunked:
                # position t predicts token t + 1; only the real completion tokens are scored
                decoder, weight = head.head_parts(model)
                with self.accelerator.autocast():
                    hidden = head.final_hidden(decoder, input_ids=ids, attention_mask=mask)[
                        :, -(logits_to_keep + 1) : -1
                    ]
                    out = head.token_logprobs(
                        hidden[valid],
                        weight,
                        targets[valid],
                        temperature=self.temperature,
                        with_entropy=compute_entropy,
                    )
                del hidden
                logps = torch.zeros(valid.shape, dtype=out.logps.dtype, device=out.logps.device)
                logps[valid] = out.logps
                all_logps.append(logps)
                if compute_entropy:
                    entropy = torch.zeros_like(logps, requires_grad=False)
                    entropy[valid] = out.entropy
                    all_entropies.append(entropy)
                continue
            with self.accelerator.autocast():
                out = model(
                    input_ids=ids, attention_mask=mask, logits_to_keep=logits_to_keep + 1, use_cache=False
                )
            # position t predicts token t + 1; one fp32 copy of the logits (divided in place), and the
            # model's bf16 logits dropped at once: they are the largest tensors of the step
            logits = out.logits[:, :-1].float().div_(self.temperature)
            del out
            log_z = torch.logsumexp(logits, dim=-1)
            logps = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_z
            all_logps.append(logps.masked_fill(~valid, 0.0))
            if compute_entropy:
                if entropy_graph:  # the loss differentiates it
                    entropy = log_z - (torch.softmax(logits, dim=-1) * logits).sum(dim=-1)
                else:
                    # Logged (and read by the top-entropy mask) only: no graph keeps a softmax over the
                    # whole vocabulary for the backward pass, and p * logits is built in one copy.
                    with torch.no_grad():
                        p_logits = (logits - log_z.unsqueeze(-1)).exp_().mul_(logits)
                        entropy = log_z - p_logits.sum(dim=-1)
                        del p_logits
                all_entropies.append(entropy.masked_fill(~valid, 0.0))
        entropies = torch.cat(all_entropies, dim=0) if compute_entropy else None
        logps = torch.cat(all_logps, dim=0)
        self._decision_old_logps(logps)
        return logps, entropies, None

    def _head_choice(self, model: Any, input_ids: Any, attention_mask: Any) -> str:
        """``lm_head_loss`` for this run, decided on its first inputs (:func:`thinkbudget.head.choose_head_loss`)."""
        if self._lm_head_choice is None:
            asked = getattr(self.args, "lm_head_loss", "fused")
            self._lm_head_choice = head.choose_head_loss(
                asked, self.args.use_cpu, model, input_ids, attention_mask, self.accelerator.autocast
            )
        return self._lm_head_choice

    def _generate(self, prompts: list):
        t0 = time.perf_counter()
        out = super()._generate(prompts)
        seconds = time.perf_counter() - t0
        completion_ids = out[1]
        if self.args.use_cpu:  # the rollout copy and KV cache go back before the update
            self._bf16_rollout_model = None
            self._release_memory()
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["timing/generation_s"].append(seconds)
        if mode == "train":
            self.run_totals["generation_s"] += seconds
            self.run_totals["generated_tokens"] += sum(len(c) for c in completion_ids)
            self.run_totals["rollouts"] += len(completion_ids)
        return out

    def _rollout_copy(self, model: Any) -> Any | None:
        """A bf16 copy of the policy for rollouts on a CPU, made from the fp32 master weights for each
        generation batch and dropped after it (:meth:`_generate`), so that its 2 bytes a parameter do not
        sit beside the update's gradients and optimizer state (the update holds the stage's peak memory).

        Autocast casts every weight at every decoding step; generating from bf16 weights is about 15 %
        faster on a 2-core CPU (results/cpu-speed.md) and making the copy costs ~0.1 s for 135M parameters.
        Only for bf16 training on the CPU without LoRA (elsewhere generation runs on the policy itself).
        """
        if not (self.args.bf16 and self.args.use_cpu) or hasattr(model, "peft_config"):
            return None
        import copy

        import torch

        if self._bf16_rollout_model is None:
            # Each parameter goes into the copy as bf16 directly (deepcopy's memo): copying the fp32 model
            # first would take another 4 bytes a parameter, which glibc keeps in its heap afterwards.
            with torch.no_grad():
                memo = {
                    id(p): torch.nn.Parameter(p.detach().to(torch.bfloat16), requires_grad=False)
                    for p in model.parameters()
                }
            clone = copy.deepcopy(model, memo)
            clone.__dict__.pop("forward", None)  # accelerate's autocast wrapper: not needed in pure bf16
            self._bf16_rollout_model = clone.to(torch.bfloat16).eval()
        else:
            self._bf16_rollout_model.load_state_dict(model.state_dict())
        return self._bf16_rollout_model

    def _generate_and_score_completions(self, inputs):
        """TRL's rollouts and rewards; for auto rows (``auto_decision_sampling``) each group's decisions are
        forced half and half (:func:`thinkbudget.decision.plan_branches`) and the batch carries
        ``decision_branch`` (-1 not auto, 0 forced off, 1 forced on) and ``decision_bin`` (difficulty bin of
        ``full_trace_tokens`` by :data:`thinkbudget.auto.DEFAULT_EDGES`, -1 unknown) for the loss."""
        import torch

        branches: list[str | None] = []
        if self.auto_decision_sampling and self.model.training:  # evaluation samples the decision on-policy
            modes = [row_mode(x.get("mode"), x.get("prompt")) for x in inputs]
            branches = decision.plan_branches(modes, [x.get("prompt") for x in inputs])
        self._branches = branches if any(branches) else []
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            self._branches = []
        if any(branches):
            output["decision_branch"] = torch.tensor(
                [-1 if b is None else decision.BRANCHES.index(b) for b in branches], dtype=torch.long
            )
            tokens = [x.get("full_trace_tokens") for x in inputs]
            output["decision_bin"] = torch.tensor(
                [-1 if t is None else bin_index(int(t), DEFAULT_EDGES) for t in tokens], dtype=torch.long
            )
        return output

    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        branches = self._branches
        if not branches or len(branches) != len(prompt_ids):
            return self._rollouts(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
        # AdaptThink's pi_IS: <think> and the decision token are forced (they are part of the completion,
        # so the loss sees them); the rest is sampled. A completion keeps max_completion_length tokens.
        if self._decision_tokens is None:
            self._decision_tokens = decision.decision_tokens(self.processing_class)
        forced = [self._decision_tokens.prefix(b) if b else [] for b in branches]
        completion_ids, logprobs = self._rollouts(
            [list(p) + f for p, f in zip(prompt_ids, forced)],
            images,
            multimodal_fields,
            num_generations,
            has_tool_images,
        )
        completion_ids = [(f + list(c))[: self.max_completion_length] for f, c in zip(forced, completion_ids)]
        return completion_ids, logprobs

    def _rollouts(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        """One batch of completions of ``prompt_ids`` by vLLM / paged generation (TRL's), the cached
        engine, or ``model.generate`` (with budget forcing where asked)."""
        if self.use_vllm or self.use_transformers_continuous_batching:
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images=has_tool_images
            )
        model = self.accelerator.unwrap_model(self.model_wrapped)
        rollout_model = self._rollout_copy(model) or model
        if self._cached_rollouts(rollout_model):
            return self._generate_cached(rollout_model, prompt_ids), None
        original_generate = rollout_model.generate
        processors: list[ThinkingBudgetProcessor] = []

        def generate(*args: Any, **kwargs: Any):
            if self.budget_forcing_rollouts:
                # A fresh processor per call: it reads each row's budget from this call's prompts.
                processor = ThinkingBudgetProcessor(self.processing_class)
                processors.append(processor)
                chain = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
                chain.append(processor)
                kwargs["logits_processor"] = chain
            return original_generate(*args, **kwargs)

        model.generate = generate
        try:
            out = super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images=has_tool_images
            )
        finally:
            del model.generate  # back to the class's method
        if self.budget_forcing_rollouts:
            self._record_forced(sum(len(set(p.fired)) for p in processors), len(prompt_ids))
        return out

    def _record_forced(self, forced: int, rollouts: int) -> None:
        """The share of rollouts whose </think> was forced (a metric) and the run's total."""
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["rollouts/forced_share"].append(forced / max(1, rollouts))
        if mode == "train":
            self.run_totals["forced"] += forced

    def _rollout_sampling(self) -> Any:
        """The rollout's sampling settings as :class:`~thinkbudget.generation.SamplingSettings`, or
        None when TRL's generation config asks for what the cached engine's sampler does not do."""
        from thinkbudget.generation import SamplingSettings

        g = self.generation_config
        if g is None or not g.do_sample or (g.repetition_penalty or 1.0) != 1.0 or g.min_p:
            return None
        if getattr(g, "suppress_tokens", None) or getattr(g, "bad_words_ids", None):
            return None
        return SamplingSettings(
            max_new_tokens=self.max_completion_length,
            temperature=g.temperature or 1.0,
            top_p=g.top_p if g.top_p is not None else 1.0,
            top_k=g.top_k or 0,
        )

    def _cached_rollouts(self, rollout_model: Any) -> bool:
        """Whether this rollout runs on the cached engine (``rollout_backend``; auto: on a CPU where the
        engine runs the model and TRL's sampling settings)."""
        from thinkbudget.kv_engine import supports

        choice = getattr(self.args, "rollout_backend", "auto")
        if choice == "hf":
            return False
        runs = supports(rollout_model) and self._rollout_sampling() is not None
        if choice == "cached" and not runs:
            raise ValueError(
                "rollout_backend 'cached' runs llama/qwen2/qwen3 models sampled with temperature, top_k and "
                "top_p only (no repetition_penalty, min_p or suppressed tokens); use rollout_backend 'hf'"
            )
        return runs and (choice == "cached" or rollout_model.device.type == "cpu")

    def _generate_cached(self, rollout_model: Any, prompt_ids: list[list[int]]) -> list[list[int]]:
        """Completions of ``prompt_ids`` from the cached engine (per row up to and including its
        end-of-sequence token, as TRL's own path returns them); with ``budget_forcing_rollouts`` each
        row is forced at the budget its prompt states. Seeds come from torch's global generator,
        which the trainer seeds."""
        from thinkbudget.generation import CachedGenerator, GenerationRequest
        from thinkbudget.protocol import parse_budget_from_prompt

        generator = CachedGenerator(
            self.processing_class, self._rollout_sampling(), model=rollout_model, batch_rows=len(prompt_ids)
        )
        generator.stop_ids = set(self.eos_token_ids)
        budgets: list[int | None] = [None] * len(prompt_ids)
        if self.budget_forcing_rollouts:
            texts = self.processing_class.batch_decode(prompt_ids, skip_special_tokens=False)
            budgets = [parse_budget_from_prompt(t) for t in texts]
        results = generator.generate([GenerationRequest(list(p), b) for p, b in zip(prompt_ids, budgets)])
        if self.budget_forcing_rollouts:
            self._record_forced(sum(r.forced for r in results), len(prompt_ids))
        return [r.token_ids for r in results]

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        t0 = time.perf_counter()
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        columns = {k: [x.get(k) for x in inputs] for k in ROW_COLUMNS}
        stats = completion_stats(completion_ids_list, self.processing_class, prompts=prompts, **columns)
        for name, value in rollout_metrics(stats):
            self._log_metric(name, value)  # averaged over all rows of all processes by TRL
        seconds = time.perf_counter() - t0
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["timing/scoring_s"].append(seconds)
        if mode == "train":
            self.run_totals["scoring_s"] += seconds
        return rewards


class StepTimer(TrainerCallback):
    """Wall-clock seconds of whole optimizer steps (generation, scoring, forward/backward, optimizer),
    and the step a ``train()`` call started from (non-zero when resuming)."""

    def __init__(self) -> None:
        self.step_s = 0.0
        self.steps = 0
        self.initial_global_step: int | None = None
        self._t0: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.initial_global_step = state.global_step

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._t0 is not None:
            self.step_s += time.perf_counter() - self._t0
            self.steps += 1
            self._t0 = None


def timing_summary(totals: dict[str, float], timer: StepTimer, world_generated_tokens: int) -> dict[str, Any]:
    """Generation vs optimisation seconds and throughput of this ``train()`` call (main process view)."""
    gen, score, step = totals["generation_s"], totals["scoring_s"], timer.step_s
    optim = max(0.0, step - gen - score)
    return {
        "steps_timed": timer.steps,
        "step_s_total": round(step, 3),
        "step_s_mean": round(step / timer.steps, 3) if timer.steps else None,
        "generation_s": round(gen, 3),
        "scoring_s": round(score, 3),
        "optimisation_s": round(optim, 3),
        "generation_share": round(gen / step, 4) if step > 0 else None,
        "generated_tokens_this_process": int(totals["generated_tokens"]),
        "generated_tokens_all_processes": int(world_generated_tokens),
        "generated_tokens_per_s": round(world_generated_tokens / gen, 1) if gen > 0 else None,
        "rollouts_this_process": int(totals["rollouts"]),
        "forced_rollouts_this_process": int(totals["forced"]),
    }
