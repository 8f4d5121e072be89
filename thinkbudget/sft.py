"""The SFT stage's configuration and the small pieces ``train/sft.py`` is built from.

Three dataclasses, filled by :func:`thinkbudget.run_folders.parse_config` from one recipe YAML:

- :class:`SFTScriptArguments`: the prepared dataset to train on (``dataset_path``: a ``data/prepare.py``
  folder or a Hugging Face dataset name; the mix itself is the data stage's).
- :class:`ThinkSFTConfig`: TRL's ``SFTConfig`` with this project's defaults (tensorboard, loss on the
  completion only, checkpoints every N steps, the chat template's end-of-turn token as eos).
- :class:`SFTModelConfig`: TRL's ``ModelConfig``; ``model_name_or_path`` takes an alias
  (``smollm2-135m``, ``tiny-llama``), a hub id or a local path.

How a row becomes training tokens (:func:`tokenize_row`). TRL 1.16 tokenizes a string prompt-completion
row as ``tokenizer(prompt + completion)`` and starts the loss where that sequence stops agreeing with
``tokenizer(prompt)``. When thinking is switched off with ``enable_thinking=False`` the prompt ends with
the pre-filled ``</think>\\n\\n``; BPE merges ``\\n\\n`` with the answer's first word differently once
they are joined (``ĊĊ`` alone, ``Ċ Ċ The`` joined), so TRL would train the model on a prompt it never
sees at inference (where the prompt is tokenized on its own and the model continues it). We therefore
tokenize the prompt and the completion separately, exactly as inference does, append the end-of-turn
token ``<|im_end|>`` once, and hand TRL ``input_ids`` + ``completion_mask``: TRL then only builds the
labels (-100 on the prompt), truncates to ``max_length`` and drops rows with no supervised token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from transformers.trainer_pt_utils import LengthGroupedSampler
from trl import ModelConfig, SFTConfig, SFTTrainer

from thinkbudget import head
from thinkbudget.data import DatasetArguments
from thinkbudget.hardware import OutputHeadArguments, autocast_without_weight_cache, resolve_lm_head_loss
from thinkbudget.protocol import THINK_CLOSE, THINK_OPEN, encode_prompt
from thinkbudget.run_folders import RunFolderArguments

logger = logging.getLogger(__name__)

# The chat template (thinkbudget.protocol.CHAT_TEMPLATE, ChatML) closes every assistant turn with this
# token; generation stops on it, so every target must end with it exactly once.
END_OF_TURN = "<|im_end|>"


@dataclass
class SFTScriptArguments(DatasetArguments):
    """The data of the SFT stage: a prepared dataset (:class:`thinkbudget.data.DatasetArguments`)."""


@dataclass
class ThinkSFTConfig(RunFolderArguments, OutputHeadArguments, SFTConfig):
    """TRL's ``SFTConfig`` with defaults for teaching thinking on/off and budgets to a small model."""

    output_dir: str | None = field(
        default="runs/sft/default",
        metadata={
            "help": "Folder for checkpoint-N folders, the final model, logs and run_summary.json (path)."
        },
    )
    completion_only_loss: bool | None = field(
        default=True,
        metadata={"help": "Loss on the assistant's tokens only (true/false); the prompt's labels are -100."},
    )
    eos_token: str | None = field(
        default=END_OF_TURN,
        metadata={
            "help": "End-of-turn token appended to every target once and used to stop generation (token)."
        },
    )
    max_length: int | None = field(
        default=1024,
        metadata={
            "help": "Longest training sequence, prompt + completion (tokens); longer rows are cut at the end."
        },
    )
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate of AdamW (per step)."})
    num_train_epochs: float = field(default=2.0, metadata={"help": "Passes over the training rows (epochs)."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Rows per device per step (rows)."})
    warmup_steps: float = field(
        default=0.03,
        metadata={
            "help": "Linear learning-rate warmup: steps if >= 1, else a share of all training steps (0-1)."
        },
    )
    lr_scheduler_type: str = field(
        default="cosine", metadata={"help": "Learning-rate schedule after warmup."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every N optimizer steps (steps)."})
    save_steps: float = field(
        default=200, metadata={"help": "Write a checkpoint-N every N optimizer steps (steps)."}
    )
    include_num_input_tokens_seen: str = field(
        default="non_padding",
        metadata={
            "help": "Count training tokens (non_padding, all or no); gives tokens/s in run_summary.json."
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed of model init, shuffling and dropout (integer)."})


def length_grouped_batches(lengths: list[int], batch_size: int, generator: Any = None) -> list[int]:
    """Indices in batches of similar length, the batches in random order (the longest batch first).

    transformers' ``group_by_length`` sorts each mega-batch of 50 batches from longest to shortest, so
    every 50 steps the model sees all the long rows, then all the short ones. In a mix where length is
    the row type (answer-only and result-only rows are short, full traces long) that is a curriculum in
    a loop: after the short end of a mega-batch the SFT model answered *every* question with the result
    alone (measured at step 150 of the CPU proof: 14 of 16 held-out problems, against full traces at
    step 125). Sorting for padding and then shuffling whole batches keeps the padding saving without
    the loop."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    order.sort(key=lambda i: lengths[i], reverse=True)  # stable: equal lengths stay randomly ordered
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rest = torch.randperm(len(batches) - 1, generator=generator).tolist() if len(batches) > 1 else []
    return [i for b in [batches[0], *(batches[1 + j] for j in rest)] for i in b]


class LengthBatchShuffledSampler(torch.utils.data.Sampler):
    """:func:`length_grouped_batches` as a sampler (a new order every epoch, from the trainer's seed)."""

    def __init__(self, lengths: list[int], batch_size: int, generator: Any = None) -> None:
        self.lengths, self.batch_size, self.generator = list(lengths), batch_size, generator

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        return iter(length_grouped_batches(self.lengths, self.batch_size, self.generator))


class ThinkBudgetSFTTrainer(SFTTrainer):
    """TRL's ``SFTTrainer`` with its own loss on the CPU (``lm_head_loss``), and length-grouped batches in
    random order (:func:`length_grouped_batches`).

    TRL 1.16 computes the SFT loss with a fused, chunked output head that never builds the full logits
    and recomputes them in the backward pass. On a GPU that saves memory at little cost (a Triton kernel);
    on a CPU the chunks run in PyTorch over every position, prompt included, the head's matrix product (a
    fifth of SmolLM2-135M's compute) runs twice, and the trainer loses much of the model's raw speed.
    Both of this trainer's paths compute the same loss (the mean negative log-likelihood of the completion
    tokens) over the supervised positions only: ``full_logits`` from one ordinary forward (the head from
    the batch's first completion token on, ``logits_to_keep``), ``chunked`` (the CPU default) from the
    decoder's hidden states, the head in chunks of the vocabulary (:mod:`thinkbudget.head`). Both log the same
    ``mean_token_accuracy`` and ``num_tokens`` (not ``entropy``, which needs a second pass over the
    vocabulary). Any option they do not implement (a custom loss, label smoothing, the dft loss, MoE
    auxiliary losses, ``return_outputs``) falls back to TRL's own ``compute_loss``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_loss: str | None = None  # lm_head_loss resolved on the first batch (_chunked)
        if self.args.use_cpu:  # bf16 copies of the weights are not kept through the forward pass
            autocast_without_weight_cache(self.accelerator)

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):  # group_by_length: same batches, shuffled order
            return LengthBatchShuffledSampler(sampler.lengths, sampler.batch_size, sampler.generator)
        return sampler

    def _own_loss(self, return_outputs: bool) -> bool:
        """Whether this trainer computes the loss itself (``full_logits`` or ``chunked``), not TRL."""
        return (
            resolve_lm_head_loss(self.args.lm_head_loss, self.args.use_cpu) != "fused"
            and not return_outputs
            and self.compute_loss_func is None
            and self.label_smoother is None
            and self.args.loss_type == "nll"
            and not self.aux_loss_enabled
        )

    @cached_property
    def _head_keeps_logits(self) -> bool:
        """Whether the model's forward takes ``logits_to_keep`` (transformers' causal LMs do); read once,
        not at every step."""
        import inspect

        return "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def _chunked(self, model: Any, body: dict[str, Any]) -> bool:
        """Whether ``lm_head_loss`` is ``chunked`` for this run, decided on its first batch
        (:func:`thinkbudget.head.choose_head_loss`)."""
        if self._head_loss is None:
            self._head_loss = head.choose_head_loss(
                self.args.lm_head_loss,
                self.args.use_cpu,
                model,
                body["input_ids"],
                body["attention_mask"],
                self.accelerator.autocast,
            )
        return self._head_loss == "chunked"

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self._own_loss(return_outputs) or "attention_mask" not in inputs:  # padding-free: TRL
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        labels = inputs["labels"]
        # The head only where a supervised token can be predicted: from the earliest first completion
        # token of the batch on (length-grouped rows share their prompt lengths closely). On the CPU
        # proof's rows the prompts are ~40 % of the tokens, so the head's product, the fp32 logits and
        # their gradient shrink by as much; the loss is the same.
        body = {k: v for k, v in inputs.items() if k != "labels"}
        first = _first_supervised_position(labels)
        target = labels[:, first + 1 :]
        mask = target != -100
        if self._chunked(model, body):
            # chunked: the supervised positions' head in chunks (thinkbudget/head.py), no full logits
            # (the model's own forward carries accelerate's autocast wrapper; its decoder called directly
            # does not, so the mixed precision is entered here)
            decoder, weight = head.head_parts(model)
            with self.accelerator.autocast():
                hidden = head.final_hidden(decoder, **body)[:, first:-1]
                out = head.token_logprobs(hidden[mask], weight, target[mask], with_argmax=True)
            loss_sum, correct = -out.logps.sum(), out.argmax_hit.sum()
        else:
            if not (first > 0 and self._head_keeps_logits):
                first = 0
                target = labels[:, 1:]
                mask = target != -100
            else:
                body["logits_to_keep"] = labels.shape[1] - first
            logits = model(**body, use_cache=False).logits[:, :-1]
            per_token = F.cross_entropy(
                logits.flatten(0, 1).float(), target.flatten(), ignore_index=-100, reduction="none"
            )
            loss_sum = per_token.sum()
            with torch.no_grad():
                correct = ((logits.argmax(dim=-1) == target) & mask).sum()
        num_tokens = mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss = loss_sum / torch.as_tensor(num_tokens, device=loss_sum.device).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())  # as TRL: DDP averages
        with torch.no_grad():
            num_valid = self.accelerator.gather_for_metrics(mask.sum()).sum()
            num_correct = self.accelerator.gather_for_metrics(correct).sum()
            accuracy = (num_correct / num_valid).item() if num_valid > 0 else 0.0
            self._metrics[mode]["mean_token_accuracy"].append(accuracy)
            if mode == "train":
                seen = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
                self._total_train_tokens += seen // self._tp_size
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return loss


def _first_supervised_position(labels: torch.Tensor) -> int:
    """The earliest position whose logits predict a supervised token (``labels[:, t + 1] != -100``), or 0
    when no token is supervised."""
    supervised = (labels[:, 1:] != -100).any(dim=0).nonzero()
    return int(supervised[0]) if len(supervised) else 0


@dataclass
class SFTModelConfig(ModelConfig):
    """TRL's ``ModelConfig``: the model to fine-tune and the optional LoRA adapter (``use_peft``)."""

    model_name_or_path: str | None = field(
        default="smollm2-135m",
        metadata={
            "help": "Model to fine-tune: an alias (smollm2-135m, tiny-llama), a hub id or a local path."
        },
    )


# The configuration of train/sft.py (checked by the main job and the sweeps without loading the script).
CONFIG_CLASSES = (SFTScriptArguments, ThinkSFTConfig, SFTModelConfig)


def think_token_ids(tokenizer: Any) -> list[int]:
    """Ids of ``<think>`` and ``</think>`` (single tokens after ``prepare_tokenizer_and_model``)."""
    ids = tokenizer.convert_tokens_to_ids([THINK_OPEN, THINK_CLOSE])
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise ValueError(
            f"the tokenizer has no single tokens for {THINK_OPEN}/{THINK_CLOSE}; prepare it first"
        )
    return list(ids)


def tokenize_row(
    prompt: str, completion: str, tokenizer: Any, eos_token: str = END_OF_TURN
) -> dict[str, list[int]]:
    """``input_ids`` and ``completion_mask`` of one row, tokenized as inference sees it: the prompt on its
    own (:func:`thinkbudget.protocol.encode_prompt`, the rule GRPO and evaluation use too), then the
    completion and ``eos_token`` exactly once.
    A completion may already end with ``eos_token``; one that holds it anywhere else is an error."""
    body = completion[: -len(eos_token)] if completion.endswith(eos_token) else completion
    if eos_token in body:
        raise ValueError(
            f"completion contains the end-of-turn token {eos_token!r} before its end: {completion!r}"
        )
    prompt_ids = encode_prompt(tokenizer, prompt)
    completion_ids = tokenizer(body + eos_token, add_special_tokens=False)["input_ids"]
    return {
        "input_ids": prompt_ids + completion_ids,
        "completion_mask": [0] * len(prompt_ids) + [1] * len(completion_ids),
    }


def tokenize_dataset(
    dataset: Any, tokenizer: Any, eos_token: str = END_OF_TURN, num_proc: int | None = None
) -> Any:
    """Add ``input_ids``/``completion_mask`` to a prompt/completion dataset (other columns kept for
    inspection; the trainer drops them before batching)."""
    return dataset.map(
        lambda row: tokenize_row(row["prompt"], row["completion"], tokenizer, eos_token),
        num_proc=num_proc,
        desc="Tokenizing prompt and completion separately",
    )


def lora_config(model_args: ModelConfig, tokenizer: Any) -> Any:
    """TRL's LoRA config from ``model_args``, with the think tokens' embedding rows trainable.

    ``<think>``/``</think>`` are new rows, so a frozen embedding would leave them at their initial value.
    PEFT's ``trainable_token_indices`` trains just those rows of the input embedding; with tied embeddings
    (SmolLM2) PEFT ties the same delta into ``lm_head``, so the model also learns to emit them, and
    ``merge_and_unload`` writes them back into the plain weights."""
    from trl import get_peft_config

    config = get_peft_config(model_args)
    ids = think_token_ids(tokenizer)
    existing = config.trainable_token_indices
    if existing is None:
        config.trainable_token_indices = ids
    elif isinstance(existing, dict):
        key = next(iter(existing), "embed_tokens")
        existing[key] = sorted(set(existing.get(key, [])) | set(ids))
    else:
        config.trainable_token_indices = sorted(set(existing) | set(ids))
    return config


def expose_output_head_bias(model: Any) -> None:
    """Let TRL's fused LM head read ``lm_head.bias`` through PEFT's trainable-tokens wrapper.

    TRL 1.16's SFTTrainer computes the loss with a fused head that reads ``lm_head.weight`` and
    ``lm_head.bias``. With tied embeddings PEFT wraps ``lm_head`` in a ``TrainableTokensWrapper`` that
    forwards ``weight`` (the merged, differentiable weight: think rows included) but not ``bias``, so the
    first step fails with "'TrainableTokensWrapper' object has no attribute 'bias'". We give the wrapper
    its base layer's bias (None for Llama/SmolLM2 heads). A no-op for any other head."""
    head = model.get_output_embeddings()
    try:
        head.bias  # noqa: B018 - probing an attribute PEFT may not forward
    except AttributeError:
        base = getattr(getattr(head, "token_adapter", None), "base_layer", None)
        # object.__setattr__: a plain attribute, so the same bias is not registered twice as a parameter.
        object.__setattr__(head, "bias", getattr(base, "bias", None))


def sequence_lengths(dataset: Any, max_length: int | None) -> dict[str, float | int]:
    """Token lengths of the tokenized rows (prompt + completion) and how many ``max_length`` cuts."""
    import statistics

    lengths = sorted(len(ids) for ids in dataset["input_ids"])
    return {
        "mean": round(statistics.fmean(lengths), 1),
        "p50": lengths[len(lengths) // 2],
        "p95": lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))],
        "max": lengths[-1],
        "rows_over_max_length": sum(n > max_length for n in lengths) if max_length else 0,
    }


def count_rows(dataset: Any, column: str) -> dict[str, int]:
    """``{value: count}`` of one column (for the run summary)."""
    out: dict[str, int] = {}
    for v in dataset[column]:
        out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items()))
