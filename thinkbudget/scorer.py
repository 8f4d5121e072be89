"""The trained best-of-N scorer: its data, its input, its training config, and scoring with it.

**Data.** The scorer learns from the policy's own answers: ``eval/evaluate.py --split train --samples N``
(recipes ``configs/scorer/data-*.yaml``) samples N answers per *training* problem from a checkpoint
at several budgets and with thinking off, with the evaluation's prompts and generation, and labels
each one with the project's one scorer (``correct`` in ``samples.jsonl``). That evaluation folder is the
scorer's dataset folder: ``samples.jsonl`` (one line per answer) and ``results.json`` (provenance:
checkpoint, commit, command, seed, split). :func:`load_scorer_data` refuses a folder of held-out
(test) problems.

**Input.** The scorer reads the question and the whole completion (the pre-filled tokens, thinking and
answer), nothing else: :func:`scorer_input_ids` takes exactly ``question`` and ``response`` and no gold,
and :func:`record_input` reads only :data:`SCORER_INPUT_FIELDS` of a record. The gold answer stays in
the record's ``gold`` column and the label in ``correct``; the pairs handed to the trainer hold token ids
only. An input longer than ``max_length`` tokens keeps the start of the question and the end of the
completion (where the final answer is) and drops the middle of the completion. Training and inference
tokenise with this one function.

**Objective.** TRL's ``RewardTrainer`` on pairs (a correct and a wrong answer to the same problem,
under the same budget condition by default), not a classification head on correct/incorrect labels,
because best-of-N only ever compares answers *to the same problem*: a pairwise (Bradley-Terry) loss
spends the whole model on telling those apart, while a pointwise classifier must also learn how hard
each problem is (which of two problems is likely solved), which selection never uses and which a
135M model would largely learn instead. Problems whose N answers are all right or all wrong give no
pair, and they are exactly the problems no selector can change. The price is that scores have no
fixed zero, so the weighted vote uses softmax weights within a problem
(:func:`thinkbudget.selection.softmax_weights`), which only score differences affect.

**The policy's log-probability as a prior** (``logprob_prior``). The policy's own mean log-probability of
an answer already ranks right above wrong answers well (89 % of held-out pairs on the fourth CPU proof's
checkpoint, where a head trained on 1,600 pairs reached 79 %). With the prior on, a scorer's score is
``head(question, completion) + w * mean_logprob``: ``w`` is fit on the training pairs first
(:func:`fit_logprob_weight`), and the head is trained on what the log-probability gets wrong, through
TRL's ``margin`` column (the loss is ``-log sigmoid(score_chosen - score_rejected)`` of the whole score).
The log-probability is the one recorded when the answer was generated (``mean_logprob`` in
``samples.jsonl``): it costs no extra token, and it is the only other field the scorer reads.

**The other kind.** :mod:`thinkbudget.process_scorer` judges every arithmetic line and the answer instead
of pairs of whole answers; :func:`load_scorer` loads either, by the ``kind`` in ``scorer.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import ModelConfig, RewardConfig

from thinkbudget.run_folders import RunFolderArguments

logger = logging.getLogger(__name__)

# The only record fields the scorer's input is built from (never `gold`, `correct`, `final_answer`).
SCORER_INPUT_FIELDS = ("question", "prefill", "completion")
SCORER_PREFIX = "Question: {question}\n\nResponse: "
PAIR_SCOPES = ("condition", "problem")
# Written next to the saved scorer: how its input is built (read back by TrainedScorer).
SCORER_CONFIG_FILE = "scorer.json"
SCORES_FILE = "scorer_scores.jsonl"  # an evaluation folder's cache of scores, per scorer
DEFAULT_MAX_LENGTH = 512


# --------------------------------------------------------------------------------------------------
# The input: question + whole completion, never the gold
# --------------------------------------------------------------------------------------------------
def scorer_input_ids(tokenizer: Any, question: str, response: str, max_length: int) -> list[int]:
    """The token ids the scorer reads for ``question`` answered by ``response`` (the pre-filled
    tokens, thinking and answer): ``Question: <question>\\n\\nResponse: <response>``. Over ``max_length``
    tokens, the question keeps at most half of them from its start and the response its end.

    Deliberately no gold and no label among the parameters: nothing that decides correctness can
    reach the scorer through this function."""
    head = tokenizer(SCORER_PREFIX.format(question=question), add_special_tokens=False)["input_ids"]
    tail = tokenizer(response, add_special_tokens=False)["input_ids"]
    keep_head, keep_tail = truncation(len(head), len(tail), max_length)
    return head[:keep_head] + (tail[-keep_tail:] if keep_tail else [])


def truncation(head: int, tail: int, max_length: int) -> tuple[int, int]:
    """How many tokens of the question part (``head``, kept from its start) and of the response (``tail``,
    kept from its end) the scorer reads: all of both when they fit ``max_length``, else the question at
    most half of it. The one rule of :func:`scorer_input_ids` and the process scorer's input."""
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2 tokens, got {max_length}")
    if head + tail <= max_length:
        return head, tail
    keep_head = min(head, max(max_length // 2, max_length - tail))
    return keep_head, max_length - keep_head


def record_input(record: dict[str, Any]) -> tuple[str, str]:
    """(question, response) of a ``samples.jsonl`` record, read from :data:`SCORER_INPUT_FIELDS` only."""
    missing = [f for f in SCORER_INPUT_FIELDS if f not in record]
    if missing:
        raise ValueError(
            f"sample {record.get('key', '?')} lacks {', '.join(missing)}: it was written before the scorer "
            "existed; rerun eval/evaluate.py into a fresh folder"
        )
    return record["question"], (record["prefill"] or "") + record["completion"]


# --------------------------------------------------------------------------------------------------
# Scorer data: evaluation folders of the training split
# --------------------------------------------------------------------------------------------------
def load_scorer_data(dirs: Sequence[str | os.PathLike]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every record of the evaluation folders ``dirs`` and one provenance entry per folder. A folder
    that is not an evaluation of the *training* split is refused (the scorer never sees test problems)."""
    from thinkbudget.evaluation import load_records

    records, provenance = [], []
    for d in dirs:
        d = Path(d)
        results_file = d / "results.json"
        if not results_file.is_file():
            raise ValueError(
                f"{d} is not a scorer data folder (no results.json); make one with "
                "python eval/evaluate.py --config configs/scorer/data-smoke.yaml --output DIR"
            )
        results = json.loads(results_file.read_text())
        cfg = results.get("config", {})
        split = cfg.get("split", "test")
        if split != "train":
            raise ValueError(
                f"{d} holds answers to {split!r} problems; the scorer trains on the training split only "
                "(eval/evaluate.py --split train)"
            )
        recs = list(load_records(d / "samples.jsonl").values())
        if not recs:
            raise ValueError(f"{d}/samples.jsonl holds no samples")
        records.extend(recs)
        provenance.append(
            {
                "dir": str(d),
                "model": results.get("model"),
                "model_path": results.get("model_path"),
                "commit": results.get("commit"),
                "command": results.get("command"),
                "seed": cfg.get("seed"),
                "samples_per_problem": cfg.get("samples"),
                "complete": results.get("complete"),
                "num_samples": len(recs),
            }
        )
    return records, provenance


def group_key(record: dict[str, Any], scope: str) -> tuple[str, ...]:
    """The group a record's pairs are drawn from: its problem, or its problem under its condition."""
    if scope == "problem":
        return (record["task"], record["problem_id"])
    if scope == "condition":
        return (record["task"], record["problem_id"], record["method"], record["budget_label"])
    raise ValueError(f"pair_scope must be one of {', '.join(PAIR_SCOPES)}, got {scope!r}")


def build_pairs(
    records: Iterable[dict[str, Any]],
    *,
    scope: str = "condition",
    max_pairs_per_group: int = 8,
    seed: int = 0,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(correct, wrong) record pairs within each group (:func:`group_key`): every combination, or
    ``max_pairs_per_group`` of them drawn without replacement (deterministic for ``seed``)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[group_key(r, scope)].append(r)
    pairs = []
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda r: r["key"])
        combos = [(a, b) for a in group if a["correct"] for b in group if not b["correct"]]
        if len(combos) > max_pairs_per_group:
            combos = random.Random(f"{seed}:{json.dumps(key)}").sample(combos, max_pairs_per_group)
        pairs.extend(combos)
    return pairs


def slipped_record(record: dict[str, Any], rng: random.Random, index: int = 0) -> dict[str, Any] | None:
    """A wrong copy of a right answer: one arithmetic line of its thinking changed and the rest made to
    follow (:func:`thinkbudget.traces.corrupt_trace`), its boxed answer the new result. None when the
    answer has no trace to change or its boxed answer is not the trace's result. The copy's key is the
    original's plus ``#slip<index>``; it is marked ``synthetic`` and carries no log-probability."""
    from thinkbudget.protocol import THINK_CLOSE, THINK_OPEN
    from thinkbudget.traces import corrupt_trace

    if not record.get("correct"):
        return None
    prefill = record.get("prefill") or ""
    text = prefill + record["completion"]
    start, end = text.find(THINK_OPEN), text.find(THINK_CLOSE)
    if start < 0 or end < start:
        return None
    start += len(THINK_OPEN)
    slip = corrupt_trace(text[start:end], rng)
    if slip is None:
        return None
    thinking, old, new = slip
    after = text[end:]
    if after.count("\\boxed{" + old + "}") != 1:
        return None  # the answer must be the trace's result, stated once
    text = text[:start] + thinking + after.replace("\\boxed{" + old + "}", "\\boxed{" + new + "}")
    if not text.startswith(prefill):
        return None
    return {
        **record,
        "key": f"{record['key']}#slip{index}",
        "completion": text[len(prefill) :],
        "final_answer": new,
        "correct": False,
        "mean_logprob": None,
        "synthetic": True,
    }


def slipped_copies(record: dict[str, Any], per_right: int, seed: int = 0) -> list[dict[str, Any]]:
    """Up to ``per_right`` different slipped copies of a right answer (:func:`slipped_record`); none for a
    wrong answer or one without a trace to change. Deterministic for ``seed`` and the record's key."""
    rng = random.Random(f"{seed}:{record['key']}")
    copies: dict[str, dict[str, Any]] = {}
    for _ in range(per_right * 3):  # a few extra draws: two draws may make the same copy
        if len(copies) == per_right:
            break
        copy = slipped_record(record, rng, len(copies))
        if copy is None:
            break
        copies.setdefault(copy["completion"], copy)
    return list(copies.values())


def slip_pairs(
    records: Iterable[dict[str, Any]], per_right: int, seed: int = 0
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(right answer, a slipped copy of it) for up to ``per_right`` different copies of every right
    answer that has a trace to change (:func:`slipped_copies`); deterministic for ``seed``."""
    right = sorted((r for r in records if r.get("correct")), key=lambda r: r["key"])
    return [(r, copy) for r in right for copy in slipped_copies(r, per_right, seed)]


def held_out_problem(record: dict[str, Any], fraction: float) -> bool:
    """Whether a record's problem is in the scorer's own held-out share (a hash of task and problem id,
    so every answer to a problem lands on the same side)."""
    h = hashlib.sha256(f"{record['task']}:{record['problem_id']}".encode()).digest()
    return int.from_bytes(h[:8], "big") % 10_000 < fraction * 10_000


def record_logprob(record: dict[str, Any]) -> float:
    """The policy's mean log-probability of a record's answer (nats per token), which the log-probability
    prior reads; a clear error for a record that has none (written by a backend that records none)."""
    value = record.get("mean_logprob")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(
            f"sample {record.get('key', '?')} has no mean_logprob (got {value!r}): the log-probability prior "
            "needs answers whose generation recorded it (eval/evaluate.py, backend hf or vllm)"
        )
    return float(value)


def fit_logprob_weight(
    pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    l2: float = 1.0,
    offsets: dict[str, float] | None = None,
) -> float:
    """The weight ``w`` that makes ``offset + w * mean_logprob`` the best Bradley-Terry scorer of ``pairs``:
    the maximum of ``sum log sigmoid(o_chosen - o_rejected + w * (lp_chosen - lp_rejected)) - l2 * w**2 / 2``
    (concave, Newton's method), where ``o`` is a record's score in ``offsets`` (by key; none: 0, the
    log-probability alone). The small L2 term keeps ``w`` finite when the log-probability separates every
    pair."""
    import math

    diffs = [record_logprob(a) - record_logprob(b) for a, b in pairs]
    base = [offsets[a["key"]] - offsets[b["key"]] if offsets else 0.0 for a, b in pairs]
    w = 0.0
    for _ in range(100):
        grad, hess = -l2 * w, -l2
        for o, d in zip(base, diffs):
            x = o + w * d
            p = 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0  # sigmoid(o + w d)
            grad += d * (1.0 - p)
            hess -= d * d * p * (1.0 - p)
        step = grad / hess
        w -= step
        if abs(step) < 1e-9:
            break
    return w


def pairs_dataset(
    pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    tokenizer: Any,
    max_length: int,
    logprob_weight: float = 0.0,
):
    """A ``datasets.Dataset`` of ``chosen_ids``/``rejected_ids`` (TRL's tokenised preference format):
    token ids of :func:`scorer_input_ids` and nothing else, so no gold or label column reaches TRL. With
    a ``logprob_weight`` ``w``, a ``margin`` column ``-w * (lp_chosen - lp_rejected)`` too: TRL's loss
    ``-log sigmoid(head_c - head_r - margin)`` is then the loss of the whole score ``head + w * lp``."""
    from datasets import Dataset

    def ids(r: dict[str, Any]) -> list[int]:
        return scorer_input_ids(tokenizer, *record_input(r), max_length)

    columns: dict[str, list[Any]] = {
        "chosen_ids": [ids(a) for a, _ in pairs],
        "rejected_ids": [ids(b) for _, b in pairs],
    }
    if logprob_weight:
        columns["margin"] = [-logprob_weight * (record_logprob(a) - record_logprob(b)) for a, b in pairs]
    return Dataset.from_dict(columns)


def share_ranked_right(
    pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]], scores: dict[str, float]
) -> float:
    """The share of the drawn (correct, wrong) ``pairs`` whose correct answer scores strictly higher
    (``scores`` by key): TRL's rule for the head's own accuracy, so the two figures of a run summary
    compare. Held-out *evaluation* pairs (every pair, ties 1/2, an interval) are
    :func:`thinkbudget.frontier.pairwise_accuracy`."""
    return sum(scores[a["key"]] > scores[b["key"]] for a, b in pairs) / len(pairs) if pairs else float("nan")


def data_summary(records: Sequence[dict[str, Any]], scope: str) -> dict[str, Any]:
    """Counts a reader needs to judge the data: answers, problems, share correct, groups with both labels."""
    groups: dict[tuple[str, ...], list[bool]] = defaultdict(list)
    for r in records:
        groups[group_key(r, scope)].append(bool(r["correct"]))
    return {
        "samples": len(records),
        "problems": len({(r["task"], r["problem_id"]) for r in records}),
        "correct_share": sum(r["correct"] for r in records) / len(records) if records else None,
        "groups": len(groups),
        "mixed_groups": sum(1 for g in groups.values() if any(g) and not all(g)),
    }


# --------------------------------------------------------------------------------------------------
# The training config (train/scorer.py)
# --------------------------------------------------------------------------------------------------
@dataclass
class ScorerScriptArguments:
    """Where the scorer's data comes from and how pairs are drawn from it."""

    data_dirs: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Scorer data: evaluation folders of the training split (paths), made by eval/evaluate.py "
            "with a configs/scorer/data-*.yaml recipe."
        },
    )
    pair_scope: str = field(
        default="condition",
        metadata={
            "help": "Pairs within a problem under one method and budget ('condition', as best-of-N compares) "
            "or across a problem's conditions ('problem')."
        },
    )
    max_pairs_per_group: int = field(
        default=8,
        metadata={"help": "At most this many (correct, wrong) pairs per group (pairs), drawn at random."},
    )
    scorer_eval_fraction: float = field(
        default=0.1,
        metadata={
            "help": "Share of training problems (0-1) kept out of training to report pairwise accuracy."
        },
    )
    pair_seed: int = field(default=0, metadata={"help": "Seed of the pair draw (integer)."})
    logprob_prior: bool = field(
        default=False,
        metadata={
            "help": "Score = head + w * the policy's mean log-probability of the answer (nats per token, as "
            "recorded at generation), w fit on the training pairs; the head learns what the "
            "log-probability gets wrong. Off: the head alone."
        },
    )

    slip_pairs_per_right: int = field(
        default=0,
        metadata={
            "help": "Training pairs made from the data (count per right answer): a right answer against a copy "
            "with one arithmetic line's result changed and the lines and answer after it made to follow "
            "(thinkbudget.traces.corrupt_trace), so the scorer learns to check the arithmetic. Held-out "
            "pairs stay the policy's own answers. 0: none."
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.data_dirs, str):
            self.data_dirs = [self.data_dirs]
        if isinstance(self.slip_pairs_per_right, bool) or self.slip_pairs_per_right < 0:
            raise ValueError(
                f"slip_pairs_per_right: must be a number of pairs >= 0, got {self.slip_pairs_per_right!r}"
            )
        if self.slip_pairs_per_right and self.logprob_prior:
            raise ValueError(
                "slip_pairs_per_right and logprob_prior: a slipped copy was never generated, so it has no "
                "log-probability for the prior; use one of the two"
            )
        if self.pair_scope not in PAIR_SCOPES:
            raise ValueError(f"pair_scope: must be one of {', '.join(PAIR_SCOPES)}, got {self.pair_scope!r}")
        if isinstance(self.max_pairs_per_group, bool) or self.max_pairs_per_group < 1:
            raise ValueError(
                f"max_pairs_per_group: must be a positive number of pairs, got {self.max_pairs_per_group}"
            )
        if not 0.0 <= self.scorer_eval_fraction < 1.0:
            raise ValueError(f"scorer_eval_fraction: must be in [0, 1), got {self.scorer_eval_fraction}")


@dataclass
class ThinkRewardConfig(RunFolderArguments, RewardConfig):
    """TRL's ``RewardConfig`` with defaults for a small scorer of the policy's own answers."""

    output_dir: str | None = field(
        default="runs/scorer/default",
        metadata={
            "help": "Folder for checkpoint-N folders, the final scorer, logs and run_summary.json (path)."
        },
    )
    max_length: int | None = field(
        default=DEFAULT_MAX_LENGTH,
        metadata={
            "help": "Tokens the scorer reads per answer (question + completion); longer inputs lose the middle "
            "of the completion (tokens)."
        },
    )
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate of AdamW (per step)."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the pairs (epochs)."})
    per_device_train_batch_size: int = field(
        default=8, metadata={"help": "Pairs per device per step (pairs; each is two sequences)."}
    )
    center_rewards_coefficient: float | None = field(
        default=0.01,
        metadata={"help": "Weight of the mean-zero penalty on scores (unitless; TRL's recommended 0.01)."},
    )
    warmup_steps: float = field(
        default=0.05,
        metadata={
            "help": "Linear learning-rate warmup: steps if >= 1, else a share of all training steps (0-1)."
        },
    )
    lr_scheduler_type: str = field(
        default="cosine", metadata={"help": "Learning-rate schedule after warmup."}
    )
    logging_steps: float = field(default=5, metadata={"help": "Log every N optimizer steps (steps)."})
    save_steps: float = field(
        default=200, metadata={"help": "Write a checkpoint-N every N optimizer steps (steps)."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of the head's init and the shuffling (integer)."})

    def __post_init__(self) -> None:
        if self.max_length is None or self.max_length < 16:
            raise ValueError(
                f"max_length: the scorer needs at least 16 tokens of input, got {self.max_length}"
            )
        super().__post_init__()


@dataclass
class ScorerModelConfig(ModelConfig):
    """TRL's ``ModelConfig``: the model the scorer starts from (a sequence-classification head is added)."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Scorer's starting weights: a checkpoint (path), an alias or a hub id; unset = the checkpoint "
            "that wrote the scorer data (the policy judges its own answers)."
        },
    )

    train_top_layers: int | None = field(
        default=None,
        metadata={
            "help": "Train only the last K transformer layers, the final norm and the head (layers); unset = "
            "all weights. Cuts the backward pass and the optimizer state, e.g. on a CPU."
        },
    )

    def __post_init__(self) -> None:
        if self.train_top_layers is not None and (
            isinstance(self.train_top_layers, bool) or self.train_top_layers < 1
        ):
            raise ValueError(
                f"train_top_layers: must be a positive number of layers, got {self.train_top_layers}"
            )
        if self.use_peft:
            raise ValueError("use_peft: the scorer stage fine-tunes all weights (LoRA is not supported here)")
        super().__post_init__()


# The configuration of train/scorer.py (checked by the main job and the sweeps without loading the script).
CONFIG_CLASSES = (ScorerScriptArguments, ThinkRewardConfig, ScorerModelConfig)


def freeze_below_top_layers(model: Any, k: int) -> int:
    """Leave trainable only the last ``k`` transformer layers, the final norm and the score head of a
    sequence-classification model; returns the number of trainable parameters."""
    base = getattr(model, model.base_model_prefix)
    layers = getattr(base, "layers", None)
    if layers is None or not hasattr(model, "score"):
        raise ValueError(f"train_top_layers: {type(model).__name__} has no `layers` list and `score` head")
    if k > len(layers):
        raise ValueError(f"train_top_layers: the model has {len(layers)} layers, asked to train {k}")
    for p in model.parameters():
        p.requires_grad_(False)
    for module in [*layers[-k:], getattr(base, "norm", None), model.score]:
        if module is not None:
            for p in module.parameters():
                p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def scorer_model(
    model_class: Any, model_path: str, tokenizer: Any, model_args: Any, training_args: Any, **head: Any
):
    """The model a scorer trains: ``model_path``'s weights under a fresh head of ``model_class`` (``head``:
    its ``num_labels`` and label names), seeded by ``training_args.seed``, in ``model_args.dtype`` (fp32 for
    ``auto``), think tokens kept single (:func:`thinkbudget.models.prepare_tokenizer_and_model`), and only
    the top ``model_args.train_top_layers`` layers trainable when it is set (a bad count exits naming it).
    The one recipe of both scorer kinds (train/scorer.py, train/process_scorer.py)."""
    import torch
    from transformers import set_seed

    from thinkbudget.models import prepare_tokenizer_and_model

    set_seed(training_args.seed)  # the head's initialisation
    dtype = model_args.dtype if model_args.dtype not in (None, "auto") else "float32"
    model = model_class.from_pretrained(
        model_path, dtype=getattr(torch, dtype), trust_remote_code=training_args.trust_remote_code, **head
    )
    prepare_tokenizer_and_model(tokenizer, model)
    model.config.pad_token_id = tokenizer.pad_token_id
    if model_args.train_top_layers:
        try:
            trainable = freeze_below_top_layers(model, model_args.train_top_layers)
        except ValueError as e:
            raise SystemExit(str(e)) from None
        logger.info(
            "training the top %d layers and the head: %d parameters", model_args.train_top_layers, trainable
        )
    return model


# --------------------------------------------------------------------------------------------------
# Scoring with a saved scorer (plain transformers)
# --------------------------------------------------------------------------------------------------
def scorer_identity(path: str | os.PathLike) -> str:
    """A name for a saved scorer that changes when it is retrained in place (path, weights' size and time)
    or its ``scorer.json`` changes (how it scores, e.g. the log-probability prior's weight)."""
    path = Path(path).resolve()
    config = path / SCORER_CONFIG_FILE
    suffix = f":{hashlib.sha256(config.read_bytes()).hexdigest()[:12]}" if config.is_file() else ""
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "config.json"):
        f = path / name
        if f.is_file():
            st = f.stat()
            return f"{path}:{st.st_size}:{int(st.st_mtime)}{suffix}"
    return str(path) + suffix


def forward_batches(
    model: Any, ids: Sequence[Sequence[int]], batch_size: int, pad: int
) -> Iterable[tuple[list[int], Any]]:
    """The model's logits over ``ids`` in batches of similar length (right-padded with ``pad``): yields
    (indices into ``ids``, logits of those rows)."""
    import torch

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    device = next(model.parameters()).device
    for lo in range(0, len(order), batch_size):
        chunk = order[lo : lo + batch_size]
        width = max(len(ids[i]) for i in chunk)
        input_ids = torch.tensor([list(ids[i]) + [pad] * (width - len(ids[i])) for i in chunk])
        mask = torch.tensor([[1] * len(ids[i]) + [0] * (width - len(ids[i])) for i in chunk])
        with torch.inference_mode():
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
        yield chunk, logits


def scorer_data_and_start(data_dirs: Sequence[str], model_name_or_path: str | None) -> tuple[list, list, str]:
    """``(records, provenance, start_from)`` of a scorer's training run, checked before anything loads:
    the data folders (training split only) and the weights to start from (unset: the one checkpoint that
    wrote the data, so the policy judges its own answers). A bad value exits naming it."""
    if not data_dirs:
        raise SystemExit("data_dirs: name at least one scorer data folder (eval/evaluate.py --split train)")
    try:
        records, provenance = load_scorer_data(data_dirs)
    except ValueError as e:
        raise SystemExit(f"data_dirs: {e}") from None
    start_from = model_name_or_path
    if start_from is None:
        sources = {p["model_path"] for p in provenance}
        if len(sources) != 1:
            raise SystemExit(
                f"model_name_or_path: the data comes from {sorted(sources)}; name one to start from"
            )
        start_from = sources.pop()
    return records, provenance, start_from


class SavedScorer:
    """A saved scorer of either kind, in plain transformers: the model in eval mode on ``device`` (default:
    CUDA when there is one), in ``dtype`` (``auto``: bf16 on CUDA, else fp32), with its ``scorer.json``
    (``saved``). ``max_length`` defaults to the one the scorer was trained with. A subclass names its
    transformers head (``model_class``) and gives :meth:`head_scores`; :meth:`score_records` adds the
    log-probability prior to them where the scorer carries one."""

    model_class: str = ""  # the transformers Auto class of the head

    def __init__(
        self,
        path: str,
        *,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = 16,
        max_length: int | None = None,
    ):
        import torch
        import transformers
        from transformers import AutoTokenizer

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = getattr(transformers, self.model_class).from_pretrained(path, dtype=getattr(torch, dtype))
        model.to(device).eval()
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        config_file = Path(path) / SCORER_CONFIG_FILE
        self.saved: dict[str, Any] = json.loads(config_file.read_text()) if config_file.is_file() else {}
        self.device, self.tokenizer, self.model = device, tokenizer, model
        self.max_length = max_length or self.saved.get("max_length") or DEFAULT_MAX_LENGTH
        self.logprob_weight = float(self.saved.get("logprob_weight") or 0.0)  # the log-probability prior's w
        self.batch_size = batch_size
        self.identity = scorer_identity(path)

    def head_scores(self, records: Sequence[dict[str, Any]]) -> list[tuple[float, int]]:
        """(the head's score, tokens read) of each ``samples.jsonl`` record."""
        raise NotImplementedError

    def score_records(self, records: Sequence[dict[str, Any]]) -> list[tuple[float, int]]:
        """(score, tokens read) of each ``samples.jsonl`` record: the head's score, plus ``w`` times the
        record's mean log-probability when the scorer carries the log-probability prior."""
        scored = self.head_scores(records)
        if not self.logprob_weight:
            return scored
        return [(s + self.logprob_weight * record_logprob(r), n) for r, (s, n) in zip(records, scored)]


class TrainedScorer(SavedScorer):
    """A saved pairwise scorer (``AutoModelForSequenceClassification``, one logit) reading question +
    completion."""

    model_class = "AutoModelForSequenceClassification"

    def score(self, inputs: Sequence[tuple[str, str]]) -> list[tuple[float, int]]:
        """(head score, tokens read) for each (question, response), in order: the head alone (a scorer
        with the log-probability prior adds it in :meth:`SavedScorer.score_records`)."""
        ids = [scorer_input_ids(self.tokenizer, q, r, self.max_length) for q, r in inputs]
        out: list[tuple[float, int] | None] = [None] * len(ids)
        for chunk, logits in forward_batches(self.model, ids, self.batch_size, self.tokenizer.pad_token_id):
            for i, value in zip(chunk, logits[:, 0].float().cpu().tolist()):
                out[i] = (float(value), len(ids[i]))
        return [o for o in out if o is not None]

    def head_scores(self, records: Sequence[dict[str, Any]]) -> list[tuple[float, int]]:
        return self.score([record_input(r) for r in records])


def load_scorer(path: str, **kwargs: Any) -> Any:
    """The saved scorer at ``path``: a :class:`thinkbudget.process_scorer.ProcessScorer` when its
    ``scorer.json`` says ``"kind": "process"``, else a :class:`TrainedScorer`. Both give
    ``score_records(records) -> [(score, tokens read)]`` and an ``identity``."""
    from thinkbudget.process_scorer import ProcessScorer, is_process_scorer

    return ProcessScorer(path, **kwargs) if is_process_scorer(path) else TrainedScorer(path, **kwargs)


def attach_scores(
    eval_dir: str | os.PathLike,
    records: Sequence[dict[str, Any]],
    scorer_path: str,
    *,
    batch_size: int = 16,
    dtype: str = "auto",
) -> int:
    """Give every record ``reward_score`` and ``scorer_tokens`` from the scorer at ``scorer_path`` (either
    kind, :func:`load_scorer`).

    Scores are kept per scorer in ``eval_dir/scorer_scores.jsonl`` (samples.jsonl is left as the
    evaluation wrote it); only samples without a score from this scorer are scored. Returns how many
    were scored now."""
    from thinkbudget.evaluation import append_records

    cache_path = Path(eval_dir) / SCORES_FILE
    identity = scorer_identity(scorer_path)
    cached: dict[str, dict[str, Any]] = {}
    if cache_path.is_file():
        for line in cache_path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill; its sample is scored again
            if entry.get("scorer") == identity:
                cached[entry["key"]] = entry
    todo = [r for r in records if r["key"] not in cached]
    if todo:
        scorer = load_scorer(scorer_path, batch_size=batch_size, dtype=dtype)
        logger.info("scoring %d samples of %s with %s", len(todo), eval_dir, scorer_path)
        from tqdm.auto import tqdm

        step = max(batch_size * 16, 1)
        with tqdm(total=len(todo), desc="scoring", unit="sample") as bar:
            for lo in range(0, len(todo), step):  # appended as it goes: a killed run keeps what it scored
                chunk = todo[lo : lo + step]
                entries = [
                    {"key": r["key"], "scorer": identity, "reward_score": s, "scorer_tokens": n}
                    for r, (s, n) in zip(chunk, scorer.score_records(chunk))
                ]
                append_records(cache_path, entries)
                cached.update((e["key"], e) for e in entries)
                bar.update(len(chunk))
    for r in records:
        r["reward_score"] = cached[r["key"]]["reward_score"]
        r["scorer_tokens"] = cached[r["key"]]["scorer_tokens"]
    return len(todo)
