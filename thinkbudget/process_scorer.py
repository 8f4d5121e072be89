"""The process scorer: a verdict on every arithmetic line of an answer and on its final answer.

**Why.** The pairwise scorer (:mod:`thinkbudget.scorer`) judges an answer as a whole, and on the seventh CPU
proof's checkpoint it ranks 66 % of held-out (right, wrong) pairs: it never learnt to check the sums, not
even from made-up slips (``results/frontier-cpu-smollm2-135m/experiment-slip-pairs/``). Yet 58 of the 83
wrong answers at budget 128 in that proof have a line whose arithmetic is wrong. A scorer told *which
line* is wrong gets one labelled example per line instead of one per pair, at the place where the
mistake stands (a process reward model, as in Lightman et al. 2023, "Let's verify step by step"; labels
made by a program, as in Math-Shepherd, Wang et al. 2024).

**Labels, for free.** :func:`thinkbudget.traces.line_verdicts` re-evaluates each arithmetic line of the
thinking (the evaluation's step correctness, one rule): a line is labelled right or wrong at its last
token. The last token of the completion is labelled with the answer's correctness (the project's one
scorer, ``correct`` in ``samples.jsonl``), so answers without arithmetic lines (the result alone) are
judged too. Slipped copies of right answers (:func:`thinkbudget.scorer.slipped_copies`: one line's result
changed, the rest made to follow) add wrong lines where the policy writes few.

**Input.** The pairwise scorer's: ``Question: <question>\\n\\nResponse: <completion>``, truncated by
:func:`thinkbudget.scorer.scorer_input_ids`' rule; never the gold answer. *Which* lines are arithmetic
lines is read from the text alone; their verdicts are the training labels and are never read when scoring.

**Model and score.** ``AutoModelForTokenClassification`` with two labels (wrong, right), cross-entropy at
the labelled positions only (HF ``Trainer``, ``train/process_scorer.py``). An answer's score is the
smallest log-probability of "right" over its positions: one wrong line condemns the answer (the min
aggregate of Math-Shepherd), and scores compare within a problem as the pairwise scorer's do. With the
log-probability prior, ``w`` x the policy's mean log-probability is added, ``w`` fit on held-out training
problems (:func:`fit_logprob_prior`).

**Measured** (``results/frontier-cpu-smollm2-135m/experiment-process-scorer/``): on the seventh proof's
12,800 held-out answers it ranks 70.0 % of (right, wrong) pairs against the pairwise scorer's 66.0 %, and
calls 36 % of the policy's wrong lines wrong (56 % as a line checker trained on more slips).
"""

from __future__ import annotations

import json
import logging
import math
import os
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainingArguments

from thinkbudget.run_folders import RunFolderArguments
from thinkbudget.scorer import (
    DEFAULT_MAX_LENGTH,
    SCORER_CONFIG_FILE,
    SCORER_PREFIX,
    SavedScorer,
    ScorerModelConfig,
    forward_batches,
    record_input,
    slipped_copies,
    truncation,
)

logger = logging.getLogger(__name__)

PROCESS_KIND = "process"  # scorer.json "kind" of a process scorer (the pairwise scorer's is "pairwise")
IGNORE = -100  # label of a position that is not a step (the loss skips it)


# --------------------------------------------------------------------------------------------------
# Steps: the arithmetic lines of the thinking, then the final answer
# --------------------------------------------------------------------------------------------------
def line_steps(response: str) -> list[tuple[int, bool]]:
    """(end, right) of every arithmetic line of the response's thinking, in order: ``end`` is the
    character offset in ``response`` just after the line's last character. The thinking is the text
    before the first ``</think>`` (after ``<think>`` when it opens the block); no ``</think>`` and no
    ``<think>`` means no thinking."""
    from thinkbudget.protocol import THINK_CLOSE, THINK_OPEN
    from thinkbudget.traces import line_verdicts

    close = response.find(THINK_CLOSE)
    opened = response.find(THINK_OPEN)
    if close < 0:
        if opened < 0:
            return []
        close = len(response)  # an unclosed block: all of it is thinking
    start = opened + len(THINK_OPEN) if 0 <= opened < close else 0
    return [(start + v.end, v.correct) for v in line_verdicts(response[start:close])]


def process_input(
    tokenizer: Any, question: str, response: str, step_ends: Sequence[int], max_length: int
) -> tuple[list[int], list[int], list[int]]:
    """The token ids of (question, response), as the pairwise scorer reads them, and where the steps
    stand: ``(ids, positions, kept)`` where ``positions[i]`` is the token of step ``kept[i]`` (an index
    into ``step_ends``; a step whose line truncation dropped is left out), then the last token (the final
    answer) with index ``len(step_ends)``. A step's token is the one that holds its last character."""
    head = tokenizer(SCORER_PREFIX.format(question=question), add_special_tokens=False)["input_ids"]
    enc = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
    tail, offsets = enc["input_ids"], enc["offset_mapping"]
    keep_head, keep_tail = truncation(len(head), len(tail), max_length)
    dropped = len(tail) - keep_tail  # tail tokens cut from the middle of the response
    ids = head[:keep_head] + (tail[dropped:] if keep_tail else [])
    starts = [s for s, _ in offsets]
    positions, kept = [], []
    for k, end in enumerate(step_ends):
        t = bisect_right(starts, end - 1) - 1  # the token whose span holds the line's last character
        if t >= dropped and 0 <= t < len(tail) and offsets[t][0] <= end - 1 < offsets[t][1]:
            positions.append(keep_head + t - dropped)
            kept.append(k)
    if ids:
        positions.append(len(ids) - 1)
        kept.append(len(step_ends))
    return ids, positions, kept


def process_example(
    tokenizer: Any, record: dict[str, Any], max_length: int, outcome_label: bool = True
) -> dict[str, list[int]]:
    """One training row of a labelled answer: ``input_ids`` and ``labels`` (1 right, 0 wrong at each
    arithmetic line's last token and, with ``outcome_label``, at the last token; :data:`IGNORE` elsewhere)."""
    question, response = record_input(record)
    steps = line_steps(response)
    ids, positions, kept = process_input(tokenizer, question, response, [e for e, _ in steps], max_length)
    step_labels = [int(ok) for _, ok in steps] + [int(bool(record["correct"])) if outcome_label else IGNORE]
    labels = [IGNORE] * len(ids)
    for pos, k in zip(positions, kept):
        labels[pos] = step_labels[k]
    return {"input_ids": ids, "labels": labels}


def with_slips(records: Sequence[dict[str, Any]], per_right: int, seed: int = 0) -> list[dict[str, Any]]:
    """``records`` and up to ``per_right`` different slipped copies of each right answer that has a trace
    to change (:func:`thinkbudget.scorer.slipped_copies`), deterministic for ``seed``."""
    right = sorted((r for r in records if r.get("correct")), key=lambda r: r["key"])
    return list(records) + [c for r in right for c in slipped_copies(r, per_right, seed)]


def step_counts(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many labelled steps of each kind ``records`` give: right and wrong lines, right and wrong
    final answers (before truncation)."""
    counts = {"answers": len(records), "lines_right": 0, "lines_wrong": 0, "answers_right": 0}
    for r in records:
        steps = line_steps(record_input(r)[1])
        counts["lines_right"] += sum(ok for _, ok in steps)
        counts["lines_wrong"] += sum(not ok for _, ok in steps)
        counts["answers_right"] += bool(r["correct"])
    counts["answers_wrong"] = counts["answers"] - counts["answers_right"]
    return counts


# --------------------------------------------------------------------------------------------------
# The training config (train/process_scorer.py)
# --------------------------------------------------------------------------------------------------
@dataclass
class ProcessScorerScriptArguments:
    """Where the process scorer's data comes from."""

    data_dirs: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Scorer data: evaluation folders of the training split (paths), made by eval/evaluate.py "
            "with a configs/scorer/data-*.yaml recipe."
        },
    )
    slips_per_right: int = field(
        default=2,
        metadata={
            "help": "Slipped copies of every right answer with a trace (count): one line's result changed and "
            "the rest made to follow, labelled wrong at that line and at the answer. 0: none."
        },
    )
    scorer_eval_fraction: float = field(
        default=0.1,
        metadata={
            "help": "Share of training problems (0-1) kept out of training to report step and pairwise "
            "accuracy."
        },
    )
    max_pairs_per_group: int = field(
        default=16,
        metadata={"help": "Held-out (right, wrong) pairs per problem and condition for the report (pairs)."},
    )
    slip_seed: int = field(default=0, metadata={"help": "Seed of the slipped copies (integer)."})
    logprob_prior: bool = field(
        default=False,
        metadata={
            "help": "Score = the process score + w * the policy's mean log-probability of the answer (nats per "
            "token, as recorded at generation), w fit on the pairs of the held-out training problems, where the "
            "scorer's own scores are out of sample (needs scorer_eval_fraction > 0). Off: the process score alone."
        },
    )
    outcome_label: bool = field(
        default=True,
        metadata={
            "help": "Label each answer's last token with its correctness too (true/false). false: a line checker "
            "only, trained on the answers that have arithmetic lines; an answer's score is then its least "
            "likely line's log-probability, and an answer without a line scores log 1/2 (unchecked)."
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.data_dirs, str):
            self.data_dirs = [self.data_dirs]
        if isinstance(self.slips_per_right, bool) or self.slips_per_right < 0:
            raise ValueError(f"slips_per_right: must be a count >= 0, got {self.slips_per_right!r}")
        if not 0.0 <= self.scorer_eval_fraction < 1.0:
            raise ValueError(f"scorer_eval_fraction: must be in [0, 1), got {self.scorer_eval_fraction}")
        if isinstance(self.max_pairs_per_group, bool) or self.max_pairs_per_group < 1:
            raise ValueError(
                f"max_pairs_per_group: must be a positive number of pairs, got {self.max_pairs_per_group}"
            )
        if self.logprob_prior and not self.scorer_eval_fraction:
            raise ValueError(
                "logprob_prior: its weight is fit on held-out training problems; set scorer_eval_fraction > 0"
            )


@dataclass
class ProcessScorerConfig(RunFolderArguments, TrainingArguments):
    """HF ``TrainingArguments`` with defaults for a small process scorer of the policy's own answers."""

    output_dir: str | None = field(
        default="runs/scorer/process",
        metadata={
            "help": "Folder for checkpoint-N folders, the final scorer, logs and run_summary.json (path)."
        },
    )
    max_length: int = field(
        default=DEFAULT_MAX_LENGTH,
        metadata={
            "help": "Tokens the scorer reads per answer (question + completion); longer inputs lose the middle "
            "of the completion and the lines there (tokens)."
        },
    )
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate of AdamW (per step)."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the answers (epochs)."})
    per_device_train_batch_size: int = field(
        default=16, metadata={"help": "Answers per device per step (sequences)."}
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
    logging_steps: float = field(default=10, metadata={"help": "Log every N optimizer steps (steps)."})
    save_steps: float = field(
        default=200, metadata={"help": "Write a checkpoint-N every N optimizer steps (steps)."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of the head's init and the shuffling (integer)."})
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Run the model's own code from the hub (true/false), as TRL's configs."},
    )

    def __post_init__(self) -> None:
        if self.max_length is None or self.max_length < 16:
            raise ValueError(
                f"max_length: the scorer needs at least 16 tokens of input, got {self.max_length}"
            )
        super().__post_init__()


# The configuration of train/process_scorer.py (checked by the frontier run without loading the script).
CONFIG_CLASSES = (ProcessScorerScriptArguments, ProcessScorerConfig, ScorerModelConfig)


# --------------------------------------------------------------------------------------------------
# Scoring with a saved process scorer (plain transformers)
# --------------------------------------------------------------------------------------------------
class ProcessScorer(SavedScorer):
    """A saved process scorer (``AutoModelForTokenClassification``, labels wrong/right): an answer's score
    is the smallest log-probability of "right" over its steps (:func:`process_input`)."""

    model_class = "AutoModelForTokenClassification"

    def __init__(self, path: str, **kwargs: Any):
        super().__init__(path, **kwargs)
        # Does the last token carry a verdict?
        self.outcome_label = bool(self.saved.get("outcome_label", True))

    def step_logprobs(self, records: Sequence[dict[str, Any]]) -> list[tuple[list[float], list[int], int]]:
        """For each record: (log-probability of "right" at each kept step, the steps' indices as in
        :func:`process_input`, tokens read)."""
        import torch

        inputs = []
        for r in records:
            question, response = record_input(r)
            ends = [e for e, _ in line_steps(response)]  # where the lines are; their verdicts are not read
            inputs.append(process_input(self.tokenizer, question, response, ends, self.max_length))
        out: list[Any] = [None] * len(inputs)
        ids = [ids for ids, _, _ in inputs]
        for chunk, logits in forward_batches(self.model, ids, self.batch_size, self.tokenizer.pad_token_id):
            right = torch.log_softmax(logits.float(), dim=-1)[..., 1].cpu()
            for row, i in enumerate(chunk):
                _, positions, kept = inputs[i]
                out[i] = ([float(right[row, p]) for p in positions], kept, len(inputs[i][0]))
        return out

    def process_scores(self, records: Sequence[dict[str, Any]]) -> list[tuple[float, int]]:
        """(process score, tokens read) of each record: the smallest log-probability of "right" over its
        steps. A line checker (trained without the outcome label) leaves the last token out, and an answer
        without a checkable line scores log 1/2: not checked, neither trusted nor condemned."""
        out = []
        for lps, _, n in self.step_logprobs(records):
            steps = lps if self.outcome_label else lps[:-1]  # the last position is always the final answer's
            out.append((min(steps) if steps else math.log(0.5), n))
        return out

    def head_scores(self, records: Sequence[dict[str, Any]]) -> list[tuple[float, int]]:
        return self.process_scores(records)


def fit_logprob_prior(scorer: ProcessScorer, pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> float:
    """The log-probability prior's weight for ``scorer``: the ``w`` that makes process score + ``w`` x mean
    log-probability the best Bradley-Terry scorer of ``pairs`` (:func:`thinkbudget.scorer.fit_logprob_weight`
    with the process scores as offsets). Fit on held-out training problems: on the scorer's own training
    answers its scores are in sample, too sure of themselves, and the weight would come out too small."""
    from thinkbudget.scorer import fit_logprob_weight

    records = list({r["key"]: r for pair in pairs for r in pair}.values())
    offsets = {r["key"]: s for r, (s, _) in zip(records, scorer.process_scores(records))}
    return fit_logprob_weight(pairs, offsets=offsets)


def is_process_scorer(path: str | os.PathLike) -> bool:
    """Whether the saved scorer at ``path`` is a process scorer (its ``scorer.json`` says so)."""
    config_file = Path(path) / SCORER_CONFIG_FILE
    if not config_file.is_file():
        return False
    return json.loads(config_file.read_text()).get("kind") == PROCESS_KIND


def labelled_steps(
    scorer: ProcessScorer, records: Sequence[dict[str, Any]]
) -> list[list[tuple[str, bool, float]]]:
    """For each record, its scored steps as (kind, label, log-probability of "right"): kind ``line`` (label:
    the line re-evaluated) or ``answer`` (label: the answer's correctness; none for a line checker, which
    gives the final answer no verdict)."""
    out = []
    for r, (lps, kept, _) in zip(records, scorer.step_logprobs(records)):
        steps = line_steps(record_input(r)[1])
        labelled = []
        for lp, k in zip(lps, kept):
            if k < len(steps):
                labelled.append(("line", steps[k][1], lp))
            elif scorer.outcome_label:
                labelled.append(("answer", bool(r["correct"]), lp))
        out.append(labelled)
    return out


def step_accuracy(scorer: ProcessScorer, records: Sequence[dict[str, Any]]) -> dict[str, float | int | None]:
    """How often the scorer's verdict (right when P(right) > 1/2) matches the label, per kind of step:
    right and wrong lines, right and wrong final answers (none for a line checker); with the counts."""
    hits = {k: [0, 0] for k in ("lines_right", "lines_wrong", "answers_right", "answers_wrong")}
    for steps in labelled_steps(scorer, records):
        for kind, label, lp in steps:
            key = f"{kind}s_{'right' if label else 'wrong'}"
            hits[key][0] += (math.exp(lp) > 0.5) == label
            hits[key][1] += 1
    out: dict[str, float | int | None] = {}
    for kind, (hit, n) in hits.items():
        out[f"{kind}_accuracy"] = hit / n if n else None
        out[f"{kind}_n"] = n
    return out
