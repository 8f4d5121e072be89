"""The configuration of ``eval/evaluate.py``: what to evaluate and how to generate.

It lives in the package so that the main job (``thinkbudget.pipeline``) and the sweeps check a
profile's evaluation keys against it without loading the script.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from thinkbudget import evaluation, generation, models
from thinkbudget.protocol import ANSWER_CAP


@dataclass
class EvalArguments:
    model: str = field(
        default=models.DEFAULT_MODEL,
        metadata={
            "help": f"Model: an alias ({', '.join(models.MODEL_ALIASES)}), a hub id or a checkpoint path."
        },
    )
    tasks: list[str] = field(
        default_factory=lambda: ["gsm8k"],
        metadata={"help": "Task names, comma- or space-separated (see --list-tasks)."},
    )
    budgets: list[str] = field(
        default_factory=lambda: ["off", "32", "64", "128", "256", "none"],
        metadata={
            "help": "Thinking budgets (tokens): 'off' = thinking disabled, 'none' = no budget, or integers."
        },
    )
    methods: list[str] = field(
        default_factory=lambda: list(evaluation.DEFAULT_METHODS),
        metadata={
            "help": f"Methods to run, among: {', '.join(evaluation.METHODS)} (default: all but the auto methods, "
            "which need a checkpoint trained for auto mode)."
        },
    )
    limit: int | None = field(
        default=None, metadata={"help": "First N problems of the split per task (problems); all if unset."}
    )
    task_limits: list[int] = field(
        default_factory=list,
        metadata={
            "help": "First N problems of each task, one count per entry of `tasks` (problems); empty = "
            "`limit` for every task."
        },
    )
    split: str = field(
        default="test",
        metadata={
            "help": "Problems from 'test' (held out: every reported number) or 'train' (answers to training "
            "problems: the trained scorer's data, configs/scorer/data-*.yaml)."
        },
    )
    samples: int = field(
        default=1,
        metadata={"help": "Samples per problem (answers); >1 adds pass@k, majority vote and best-of-N."},
    )
    output: str | None = field(
        default=None, metadata={"help": "Output folder (default with --run: RUN_DIR/eval)."}
    )
    run: str | None = field(
        default=None,
        metadata={"help": "A training run folder: evaluate each checkpoint-* and plot curves over steps."},
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Replace results of another evaluation in --output."}
    )
    list_tasks: bool = field(
        default=False, metadata={"help": "Print the valid task names, one a line, and exit."}
    )
    backend: str = field(
        default="auto",
        metadata={
            "help": f"Generation backend: {', '.join(generation.BACKENDS)} (auto: vllm/paged on a GPU; cached on a CPU for llama/qwen2/qwen3 models, hf for others)."
        },
    )
    batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Rows in flight for hf and cached, the resume unit for paged and vllm (samples); default: the backend's (hf and cached 64, paged 1024)."
        },
    )
    temperature: float = field(default=0.6, metadata={"help": "Sampling temperature (0 = greedy)."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling mass (probability, 0..1]."})
    top_k: int = field(default=20, metadata={"help": "Top-k filtering (tokens; 0 = off)."})
    max_new_tokens: int = field(default=768, metadata={"help": "Generation limit per sample (tokens)."})
    seed: int = field(default=0, metadata={"help": "Random seed (sampling, bootstrap, problem order)."})
    system_prompt: str | None = field(
        default=None, metadata={"help": "System message (default: the protocol's)."}
    )
    prefill_think: bool = field(
        default=False,
        metadata={
            "help": "Pre-fill '<think>' in thinking modes (s1 style), for models that do not open the block."
        },
    )
    answer_cap: int = field(
        default=ANSWER_CAP,
        metadata={
            "help": "Answer sections longer than this (tokens) count as reasoning moved after </think> "
            "(the same name and value as GRPO's answer_cap)."
        },
    )
    best_of_n_scorer: str = field(
        default="logprob",
        metadata={
            "help": "Best-of-N choice: 'logprob' (mean token log-probability) or a scorer folder (path; "
            "train/scorer.py, or any one-logit sequence-classification model)."
        },
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "Weights dtype for generation: auto (bfloat16 on a GPU or a CPU with native bf16, "
            "else float32), bfloat16, float16 or float32."
        },
    )
    hf_cache_implementation: str | None = field(
        default=None,
        metadata={"help": "KV cache of the hf backend, e.g. 'static' on a GPU (default: dynamic)."},
    )
    ci_resamples: int = field(
        default=1000, metadata={"help": "Bootstrap resamples for the 95% accuracy interval."}
    )


CONFIG_CLASSES = (EvalArguments,)
