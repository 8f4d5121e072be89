"""CPU speed benchmark: fp32 against the fast path (bf16), side by side, in one run.

    python scripts/bench_cpu.py --output results/cpu-speed            # ~20 min on 2 cores, idle machine
    python scripts/bench_cpu.py --model tiny-llama --quick true --output /tmp/bench   # smoke (tests)

Measures, at equal settings in both precisions (fp32 = fp32 weights and math; fast = bf16 autocast
with fp32 master weights for training, bf16 weights for generation):

1. **raw training**: forward + backward + AdamW step of the model on the SFT stage's own batches
   (the data mix's rows, tokenized as train/sft.py does, padded per batch); tokens/s = non-padding
   tokens / seconds, first step excluded (warm-up).
2. **SFT trainer**: TRL's ``SFTTrainer`` as train/sft.py builds it, on the same rows in the same
   batches (no shuffling), same tokens/s definition, first step excluded. The ratio trainer / raw is
   what the trainer loses.
3. **GRPO step**: ``ThinkBudgetGRPOTrainer`` (the project's GRPO trainer) for a few steps; seconds
   per step split into generation, scoring and optimisation.
4. **evaluation generation**: the project's hf generator (refilled batches, per-sample seeds) on the
   evaluation's thinking prompts, against a plain batched bf16 ``model.generate`` of fixed length
   (every row generates exactly max_new_tokens, so no row idles: the machine's ceiling).
5. **quality of bf16**: the first ``quality_steps`` steps' loss of the raw loop in both precisions
   (same batches, same seed), and greedy evaluation answers of one checkpoint in both precisions.

``--decoding_only true`` measures decoding alone, bf16, before (the hf backend: ``model.generate`` in
refilled batches) against after (the cached engine, ``thinkbudget/kv_engine.py``): the real evaluation
(eval/evaluate.py at the proof's settings, once a side, answers compared sample by sample), the
evaluation generator over ``--repeats`` alternating runs, greedy answers, GRPO steps with each rollout
backend, and decoding's FLOP rate against a large bf16 matmul's::

    python scripts/bench_cpu.py --decoding_only true --checkpoint RUN/rl --output results/cpu-speed-decoding

Writes ``<output>.json`` and ``<output>.md`` with machine, commit and command; the targets of the
issue (SFT trainer >= 80 % of raw bf16, evaluation >= 70 % of plain bf16 generate, fast over fp32:
SFT >= 2x, evaluation >= 3x, GRPO step >= 2.5x, loss within 2 %, greedy answers agree >= 95 %) are
reported as reached or not.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from thinkbudget import models, run_folders

logger = logging.getLogger("bench_cpu")


@dataclass
class BenchArguments:
    model: str = field(default=models.DEFAULT_MODEL, metadata={"help": "Model alias, hub id or path."})
    checkpoint: str | None = field(
        default=None,
        metadata={"help": "Checkpoint for the greedy-agreement check and the eval prompts (default: model)."},
    )
    batch_rows: int = field(default=16, metadata={"help": "Training rows per step (rows)."})
    train_steps: int = field(default=8, metadata={"help": "Timed training steps per side (steps)."})
    quality_steps: int = field(default=50, metadata={"help": "Steps of the bf16/fp32 loss comparison."})
    quality_batch_rows: int = field(default=8, metadata={"help": "Rows per step of the loss comparison."})
    grpo_steps: int = field(default=2, metadata={"help": "Timed GRPO steps per side (steps)."})
    grpo_prompts: int = field(default=4, metadata={"help": "Prompts per GRPO step (x num_generations)."})
    grpo_generations: int = field(default=8, metadata={"help": "Completions per prompt (count)."})
    grpo_micro_batch: int = field(
        default=4, metadata={"help": "GRPO completions per micro-batch, as the CPU profiles (completions)."}
    )
    grpo_max_completion: int = field(default=128, metadata={"help": "GRPO completion limit (tokens)."})
    eval_prompts: int = field(default=128, metadata={"help": "Evaluation prompts (count)."})
    eval_task: str = field(
        default="chain",
        metadata={
            "help": "Task of the evaluation and greedy prompts and of the GRPO steps' prompts (a task name; "
            "the proof and the demo train on chain, so their checkpoints answer it as they were taught)."
        },
    )
    lm_head_only: bool = field(
        default=False,
        metadata={
            "help": "Only the output-head comparison in bf16: raw fwd+bwd, the SFT trainer and a GRPO step "
            "with lm_head_loss fused (TRL's chunked head) and full_logits (one plain forward); the CPU "
            "default, chunked, is compared with full_logits in results/cpu-memory.md."
        },
    )
    eval_batch: int = field(default=64, metadata={"help": "Generation batch rows (rows)."})
    eval_max_new_tokens: int = field(default=192, metadata={"help": "Generation limit (tokens)."})
    agreement_problems: int = field(default=100, metadata={"help": "Problems of the greedy check."})
    decoding_only: bool = field(
        default=False,
        metadata={
            "help": "Only decoding, bf16: the hf backend (before) against cached (after) in evaluation and "
            "GRPO rollouts, the greedy agreement of the two, and decoding's share of a large bf16 matmul's "
            "FLOP rate (true/false)."
        },
    )
    repeats: int = field(default=3, metadata={"help": "Timed runs of each side in decoding_only (runs)."})
    real_eval_limits: str = field(
        default="200,200",
        metadata={
            "help": "decoding_only: problems of chain,gsm8k in the real evaluation (eval/evaluate.py at the "
            "proof's settings: off, 32, 64, 128 and free thinking, 224 new tokens, batch 64) run once with "
            "each backend; empty = skip it (problems)."
        },
    )
    quick: bool = field(default=False, metadata={"help": "Tiny sizes for a smoke run (true/false)."})
    seed: int = field(default=0, metadata={"help": "Random seed."})
    output: str = field(default="results/cpu-speed", metadata={"help": "Output path without extension."})

    def __post_init__(self) -> None:
        limits = self.real_eval_limits.split(",") if self.real_eval_limits else []
        if self.real_eval_limits and (
            len(limits) != 2 or not all(x.isdigit() and int(x) > 0 for x in limits)
        ):
            raise ValueError(
                f"--real_eval_limits takes two positive problem counts (chain,gsm8k) or '', got {self.real_eval_limits!r}"
            )
        if (self.grpo_prompts * self.grpo_generations) % self.grpo_micro_batch:
            raise ValueError(
                f"--grpo_micro_batch {self.grpo_micro_batch} must divide the {self.grpo_prompts} x "
                f"{self.grpo_generations} completions of a GRPO step"
            )
        if self.quick:
            self.real_eval_limits = "2,1" if self.real_eval_limits else ""
            self.batch_rows, self.train_steps, self.quality_steps, self.quality_batch_rows = 4, 3, 3, 2
            self.grpo_steps, self.grpo_prompts, self.grpo_generations, self.grpo_max_completion = 1, 2, 2, 16
            self.eval_prompts, self.eval_batch, self.eval_max_new_tokens, self.agreement_problems = (
                8,
                4,
                16,
                4,
            )


PRECISIONS = ("fp32", "bf16")


def autocast(precision: str):
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


# ------------------------------------------------------------------------------------------------
# Training batches: the SFT stage's rows, tokenized exactly as train/sft.py does
# ------------------------------------------------------------------------------------------------
def sft_rows(args: BenchArguments, tokenizer: Any, n: int):
    from thinkbudget.data import DataMixArguments, build_sft_dataset
    from thinkbudget.sft import END_OF_TURN, tokenize_dataset

    per_task = max(2, math.ceil(n / 3 / 0.9))
    mix = DataMixArguments(
        tasks=["chain", "multiply", "nested"],
        num_train_problems=per_task,
        num_test_problems=0,
        budgets=[32, 64, 128],
        think_budget_ratio=0.6,
        think_free_ratio=0.15,
        no_think_ratio=0.25,
    )
    rows = build_sft_dataset(mix, tokenizer).shuffle(seed=args.seed).select(range(n))
    return tokenize_dataset(rows, tokenizer, END_OF_TURN)


def padded_batches(dataset: Any, batch_rows: int, pad_id: int) -> list[dict[str, Any]]:
    """Consecutive batches, right-padded to the batch's longest row, labels -100 outside the completion."""
    import torch

    out = []
    for lo in range(0, len(dataset) - batch_rows + 1, batch_rows):
        rows = dataset[lo : lo + batch_rows]
        width = max(len(x) for x in rows["input_ids"])
        ids, mask, labels = [], [], []
        for x, c in zip(rows["input_ids"], rows["completion_mask"]):
            pad = width - len(x)
            ids.append(x + [pad_id] * pad)
            mask.append([1] * len(x) + [0] * pad)
            labels.append([t if m else -100 for t, m in zip(x, c)] + [-100] * pad)
        out.append(
            {
                "input_ids": torch.tensor(ids),
                "attention_mask": torch.tensor(mask),
                "labels": torch.tensor(labels),
            }
        )
    return out


def raw_training(model_path: str, batches: list[dict[str, Any]], precision: str, seed: int) -> dict[str, Any]:
    """Plain forward + backward + AdamW on ``batches``: tokens/s (non-padding, first step excluded)
    and the loss of every step."""
    import torch
    from transformers import set_seed

    set_seed(seed)
    model, _ = models.load_model_and_tokenizer(model_path, dtype="float32")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    losses, seconds, tokens = [], 0.0, 0
    for k, batch in enumerate(batches):
        t0 = time.perf_counter()
        with autocast(precision):
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        losses.append(float(loss))
        if k > 0:
            seconds += dt
            tokens += int(batch["attention_mask"].sum())
    return {"tokens_per_s": tokens / seconds if seconds else None, "seconds": seconds, "losses": losses}


def sft_trainer(
    model_path: str,
    dataset: Any,
    args: BenchArguments,
    precision: str,
    out: Path,
    lm_head_loss: str = "auto",
) -> dict[str, Any]:
    """The project's SFT trainer (TRL SFTTrainer with ThinkSFTConfig) on ``dataset`` without shuffling."""
    from transformers import TrainerCallback

    from thinkbudget.sft import ThinkBudgetSFTTrainer, ThinkSFTConfig

    class Timer(TrainerCallback):
        def __init__(self):
            self.t0, self.seconds, self.steps, self.tokens_at = None, 0.0, 0, []

        def on_step_begin(self, a, state, control, **kw):
            self.t0 = time.perf_counter()
            self.tokens_at.append(state.num_input_tokens_seen)

        def on_step_end(self, a, state, control, **kw):
            if state.global_step > 1:  # the first step is warm-up
                self.seconds += time.perf_counter() - self.t0
                self.steps += 1
            self.tokens_at.append(state.num_input_tokens_seen)

    config = ThinkSFTConfig(
        output_dir=str(out),
        overwrite_output_dir=True,
        max_steps=args.train_steps,
        per_device_train_batch_size=args.batch_rows,
        gradient_accumulation_steps=1,
        learning_rate=1e-4,
        bf16=precision == "bf16",
        use_cpu=True,
        save_strategy="no",
        report_to="none",
        logging_steps=1,
        train_sampling_strategy="sequential",
        dataloader_num_workers=0,
        seed=args.seed,
        lm_head_loss=lm_head_loss,
    )
    model, tokenizer = models.load_model_and_tokenizer(model_path, dtype="float32")
    timer = Timer()
    trainer = ThinkBudgetSFTTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[timer]
    )
    trainer.train()
    # tokens of the timed steps: num_input_tokens_seen counts non-padding tokens ("non_padding")
    seen = trainer.state.num_input_tokens_seen
    first = timer.tokens_at[2] if len(timer.tokens_at) > 2 else 0
    return {
        "tokens_per_s": (seen - first) / timer.seconds if timer.seconds else None,
        "seconds": timer.seconds,
        "steps_timed": timer.steps,
    }


def grpo_steps(
    model_path: str,
    args: BenchArguments,
    precision: str,
    out: Path,
    lm_head_loss: str = "auto",
    rollout_backend: str = "hf",
    length_grouped: bool = True,
) -> dict[str, Any]:
    """A few GRPO steps of the project's trainer; seconds per step split by phase. ``length_grouped``:
    the trainer's micro-batches grouped by length and trimmed (false: TRL's shuffled full-width split)."""
    from thinkbudget.data import build_rl_dataset
    from thinkbudget.rewards import RewardParams, get_reward_funcs
    from thinkbudget.rl import StepTimer, ThinkBudgetGRPOTrainer, ThinkGRPOConfig

    model, tokenizer = models.load_model_and_tokenizer(model_path, dtype="float32")
    tokenizer.padding_side = "left"
    # The demo's data recipe (its budgets and modes) on 20 training problems of eval_task.
    from dataclasses import replace

    from thinkbudget.data import CONFIG_CLASSES
    from thinkbudget.run_folders import REPO_ROOT, parse_config

    _, demo = parse_config(CONFIG_CLASSES, ["--config", str(REPO_ROOT / "configs/data/cpu.yaml")])
    mix = replace(demo, tasks=[args.eval_task], num_train_problems=20, num_test_problems=0)
    dataset = build_rl_dataset(mix, tokenizer)
    per_step = args.grpo_prompts * args.grpo_generations
    config = ThinkGRPOConfig(
        output_dir=str(out),
        overwrite_output_dir=True,
        max_steps=args.grpo_steps + 1,
        # Micro-batches of grpo_micro_batch completions, as the CPU profiles train: 48 completions in one
        # full-logits forward take over 9 GB.
        per_device_train_batch_size=min(per_step, args.grpo_micro_batch),
        gradient_accumulation_steps=max(1, per_step // args.grpo_micro_batch),
        num_generations=args.grpo_generations,
        max_completion_length=args.grpo_max_completion,
        learning_rate=1e-6,
        bf16=precision == "bf16",
        use_cpu=True,
        save_strategy="no",
        report_to="none",
        logging_steps=1,
        seed=args.seed,
        temperature=0.8,
        lm_head_loss=lm_head_loss,
        rollout_backend=rollout_backend,
        length_grouped_micro_batches=length_grouped,
    )
    names = ["correctness", "soft_overlong", "format", "mode_compliance"]
    timer = StepTimer()
    trainer = ThinkBudgetGRPOTrainer(
        model=model,
        reward_funcs=get_reward_funcs(names, tokenizer, RewardParams(answer_cap=32)),
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[timer],
    )
    step_s: list[float] = []

    class PerStep(StepTimer):
        def on_step_end(self, a, state, control, **kw):
            t = self._t0
            super().on_step_end(a, state, control, **kw)
            if t is not None:
                step_s.append(time.perf_counter() - t)

    trainer.add_callback(PerStep())
    marks: list[dict[str, float]] = []
    orig = trainer.training_step

    def training_step(*a, **kw):
        marks.append(dict(trainer.run_totals))
        return orig(*a, **kw)

    trainer.training_step = training_step
    trainer.train()
    # Timed = every step but the first (warm-up): differences of the run totals.
    first, last = marks[1] if len(marks) > 1 else marks[0], dict(trainer.run_totals)
    steps = max(1, len(step_s) - 1)
    step_total = sum(step_s[1:]) if len(step_s) > 1 else sum(step_s)
    gen = last["generation_s"] - first["generation_s"]
    score = last["scoring_s"] - first["scoring_s"]
    return {
        "step_s": step_total / steps,
        "step_s_runs": step_s[1:] if len(step_s) > 1 else step_s,  # each timed step: their spread
        "generation_s": gen / steps,
        "scoring_s": score / steps,
        "optimisation_s": max(0.0, step_total - gen - score) / steps,
        "generated_tokens_per_step": (last["generated_tokens"] - first["generated_tokens"]) / steps,
        "completions_per_step": per_step,
        "steps_timed": steps,
        "rollout_backend": rollout_backend,
        "micro_batches": "grouped by length" if length_grouped else "TRL's shuffled, full width",
    }


def eval_prompts(tokenizer: Any, n: int, task: str = "chain") -> list[Any]:
    from thinkbudget.protocol import build_messages, render_prompt
    from thinkbudget.tasks import load_problems

    problems = load_problems(task, "test", n)
    return problems, [
        tokenizer(render_prompt(tokenizer, build_messages(p.question)), add_special_tokens=False)["input_ids"]
        for p in problems
    ]


def eval_generation(
    model_path: str, args: BenchArguments, precision: str, greedy: bool = False, backend: str = "hf"
) -> dict[str, Any]:
    """The project's generator (``backend``: hf or cached) on the evaluation's thinking prompts."""
    import torch

    from thinkbudget.generation import GenerationRequest, SamplingSettings, build_generator, sample_seed

    model, tokenizer = models.load_model_and_tokenizer(
        model_path, dtype="bfloat16" if precision == "bf16" else "float32"
    )
    model.eval()
    n = args.agreement_problems if greedy else args.eval_prompts
    problems, prompts = eval_prompts(tokenizer, n, args.eval_task)
    sampling = SamplingSettings(args.eval_max_new_tokens, 0.0 if greedy else 0.6, 0.95, 20, args.seed)
    gen = build_generator(
        backend, model=model, tokenizer=tokenizer, sampling=sampling, batch_rows=args.eval_batch
    )
    reqs = [GenerationRequest(p, seed=sample_seed(args.seed, str(i))) for i, p in enumerate(prompts)]
    gen.generate(reqs[: min(4, len(reqs))])  # warm-up
    t0 = time.perf_counter()
    results = gen.generate(reqs)
    seconds = time.perf_counter() - t0
    tokens = sum(len(r.token_ids) for r in results)
    out = {"tokens_per_s": tokens / seconds, "seconds": seconds, "tokens": tokens, "rows": len(reqs)}
    if greedy:
        from thinkbudget.grading import extract_boxed
        from thinkbudget.parsing import parse_completion

        out["answers"] = [extract_boxed(parse_completion(r.token_ids, tokenizer).answer) for r in results]
        out["token_ids"] = [r.token_ids for r in results]
        out["gold"] = [p.answer for p in problems]
    del model
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return out


def plain_generate(model_path: str, args: BenchArguments) -> dict[str, Any]:
    """Plain batched bf16 ``model.generate``, every row exactly max_new_tokens long (the ceiling)."""
    import torch

    model, tokenizer = models.load_model_and_tokenizer(model_path, dtype="bfloat16")
    model.eval()
    tokenizer.padding_side = "left"
    _, prompts = eval_prompts(tokenizer, args.eval_prompts, args.eval_task)
    new = args.eval_max_new_tokens
    tokens, seconds = 0, 0.0
    for k, lo in enumerate(range(0, len(prompts), args.eval_batch)):
        chunk = prompts[lo : lo + args.eval_batch]
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in chunk])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new,
                min_new_tokens=new,
                do_sample=True,
                temperature=0.6,
                top_p=0.95,
                top_k=20,
                pad_token_id=tokenizer.pad_token_id,
            )
        if k > 0 or len(prompts) <= args.eval_batch:
            seconds += time.perf_counter() - t0
            tokens += len(chunk) * new
    return {"tokens_per_s": tokens / seconds, "seconds": seconds, "tokens": tokens}


def agreement_target(answers_a: list[Any], answers_b: list[Any], bar: float = 0.95) -> dict[str, Any]:
    """ "Greedy answers agree on >= 95 % of problems", judged by the project's one rule
    (:class:`thinkbudget.targets.Targets`): reached when the Wilson interval of the agreement clears the bar."""
    from thinkbudget.evaluation import wilson_interval
    from thinkbudget.targets import Targets

    same = sum(a == b for a, b in zip(answers_a, answers_b))
    n = len(answers_a)
    lo, hi = wilson_interval(same, n)
    t = Targets()
    name = f"greedy answers agree on >= {100 * bar:.0f} % of problems (Wilson interval)"
    t.add("-", name, "", lo, bar, point=same / n)
    return {"target": name, "value": same / n, "interval": [lo, hi], "n": n, "verdict": t.rows[0]["verdict"]}


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "not measured"
    return "reached" if value >= target else "NOT reached"


def main(args: BenchArguments) -> dict[str, Any]:
    import tempfile

    import torch

    from thinkbudget.hardware import cpu_has_native_bf16

    torch.manual_seed(args.seed)
    model_path = models.resolve_model_path(args.model)
    checkpoint = models.resolve_model_path(args.checkpoint) if args.checkpoint else model_path
    tokenizer = models.load_tokenizer(model_path)
    n_rows = args.batch_rows * (args.train_steps + 1)
    dataset = sft_rows(args, tokenizer, max(n_rows, args.quality_batch_rows * args.quality_steps))
    train_batches = padded_batches(dataset.select(range(n_rows)), args.batch_rows, tokenizer.pad_token_id)
    quality_batches = padded_batches(
        dataset.select(range(args.quality_batch_rows * args.quality_steps)),
        args.quality_batch_rows,
        tokenizer.pad_token_id,
    )
    report: dict[str, Any] = {
        "model": args.model,
        "checkpoint": args.checkpoint,
        "device": run_folders.device_description(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "torch_threads": torch.get_num_threads(),
        "commit": run_folders.git_commit(),
        "command": run_folders.command_line(),
        "settings": asdict(args),
        "mean_row_tokens": sum(len(x) for x in dataset["input_ids"]) / len(dataset),
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench_cpu_"))
    if args.lm_head_only:
        return lm_head_comparison(args, model_path, dataset.select(range(n_rows)), train_batches, report, tmp)
    if args.decoding_only:
        return decoding_comparison(args, checkpoint, report, tmp)
    for precision in PRECISIONS:
        logger.info("[%s] raw training", precision)
        report[f"raw_train_{precision}"] = raw_training(model_path, train_batches, precision, args.seed)
        logger.info("[%s] SFT trainer", precision)
        report[f"sft_trainer_{precision}"] = sft_trainer(
            model_path, dataset.select(range(n_rows)), args, precision, tmp / f"sft-{precision}"
        )
        logger.info("[%s] GRPO steps", precision)
        report[f"grpo_{precision}"] = grpo_steps(checkpoint, args, precision, tmp / f"grpo-{precision}")
        logger.info("[%s] evaluation generation", precision)
        report[f"eval_{precision}"] = eval_generation(checkpoint, args, precision)
        logger.info("[%s] quality: loss of the first %d steps", precision, args.quality_steps)
        report[f"quality_loss_{precision}"] = raw_training(model_path, quality_batches, precision, args.seed)[
            "losses"
        ]
        report[f"greedy_{precision}"] = eval_generation(checkpoint, args, precision, greedy=True)
    logger.info("plain bf16 generate")
    report["plain_generate_bf16"] = plain_generate(checkpoint, args)

    r = report
    lf, lb = r["quality_loss_fp32"], r["quality_loss_bf16"]
    rel = [abs(b - f) / abs(f) for f, b in zip(lf, lb) if f]
    ga, gb = r["greedy_fp32"], r["greedy_bf16"]
    agreement = agreement_target(ga["answers"], gb["answers"])
    identical = sum(a == b for a, b in zip(ga["token_ids"], gb["token_ids"])) / len(ga["token_ids"])
    for g in (ga, gb):
        g["accuracy"] = sum(
            a is not None and str(a).strip() == str(gold) for a, gold in zip(g["answers"], g["gold"])
        ) / len(g["answers"])
        del g["token_ids"]
    figures = {
        "sft_trainer_over_raw_bf16": r["sft_trainer_bf16"]["tokens_per_s"]
        / r["raw_train_bf16"]["tokens_per_s"],
        "eval_over_plain_generate_bf16": r["eval_bf16"]["tokens_per_s"]
        / r["plain_generate_bf16"]["tokens_per_s"],
        "sft_bf16_over_fp32": r["sft_trainer_bf16"]["tokens_per_s"] / r["sft_trainer_fp32"]["tokens_per_s"],
        "eval_bf16_over_fp32": r["eval_bf16"]["tokens_per_s"] / r["eval_fp32"]["tokens_per_s"],
        "grpo_step_bf16_over_fp32": r["grpo_fp32"]["step_s"] / r["grpo_bf16"]["step_s"],
        "raw_train_bf16_over_fp32": r["raw_train_bf16"]["tokens_per_s"] / r["raw_train_fp32"]["tokens_per_s"],
        "loss_mean_relative_difference": sum(rel) / len(rel),
        "loss_max_relative_difference": max(rel),
        "loss_mean_over_steps_relative_difference": abs(sum(lb) - sum(lf)) / abs(sum(lf)),
        "greedy_answer_agreement": agreement["value"],
        "greedy_identical_completions": identical,
    }
    targets = [
        ("SFT trainer tokens/s >= 80 % of raw bf16 fwd+bwd", figures["sft_trainer_over_raw_bf16"], 0.8),
        ("evaluation tokens/s >= 70 % of plain bf16 generate", figures["eval_over_plain_generate_bf16"], 0.7),
        ("SFT trainer bf16 >= 2x fp32", figures["sft_bf16_over_fp32"], 2.0),
        ("evaluation generation bf16 >= 3x fp32", figures["eval_bf16_over_fp32"], 3.0),
        ("GRPO step bf16 >= 2.5x fp32", figures["grpo_step_bf16_over_fp32"], 2.5),
    ]
    report["figures"] = figures
    report["targets"] = [{"target": t, "value": v, "verdict": verdict(v, x)} for t, v, x in targets]
    report["targets"].append(agreement)
    loss_ok = figures["loss_mean_relative_difference"] <= 0.02
    report["targets"].append(
        {
            "target": "first SFT steps' loss within 2 % of fp32 (mean per-step relative difference)",
            "value": figures["loss_mean_relative_difference"],
            "verdict": "reached" if loss_ok else "NOT reached",
        }
    )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    run_folders.write_json_atomic(out.with_suffix(".json"), report)
    out.with_suffix(".md").write_text(markdown(report))
    logger.info("wrote %s.json and %s.md", out, out)
    return report


def lm_head_comparison(
    args: BenchArguments, model_path: str, dataset: Any, batches: list, report: dict[str, Any], tmp: Path
) -> dict[str, Any]:
    """bf16 only: raw fwd+bwd+AdamW, then the project's SFT trainer and GRPO steps with TRL's fused
    output head and with the full-logits path, on the same rows / prompts and seeds."""
    raw = raw_training(model_path, batches, "bf16", args.seed)
    report["raw_train_bf16"] = {k: v for k, v in raw.items() if k != "losses"}
    checkpoint = models.resolve_model_path(args.checkpoint) if args.checkpoint else model_path
    for choice in ("fused", "full_logits"):
        logger.info("[bf16] SFT trainer, lm_head_loss=%s", choice)
        report[f"sft_trainer_bf16_{choice}"] = sft_trainer(
            model_path, dataset, args, "bf16", tmp / f"sft-{choice}", lm_head_loss=choice
        )
        logger.info("[bf16] GRPO steps, lm_head_loss=%s", choice)
        report[f"grpo_bf16_{choice}"] = grpo_steps(
            checkpoint, args, "bf16", tmp / f"grpo-{choice}", lm_head_loss=choice
        )
    base = report["raw_train_bf16"]["tokens_per_s"]
    fused, full = report["sft_trainer_bf16_fused"], report["sft_trainer_bf16_full_logits"]
    g_fused, g_full = report["grpo_bf16_fused"], report["grpo_bf16_full_logits"]
    lines = [
        "# The output head on the CPU: TRL's fused head against one full-logits forward (bf16)",
        "",
        f"Machine: {report['device']}; torch threads: {report['torch_threads']}. Commit `{report['commit']}`.",
        f"Command: `{report['command']}`. Model `{report['model']}`; SFT: mean row {report['mean_row_tokens']:.0f} "
        f"tokens, {args.batch_rows} rows a step, {args.train_steps} steps; GRPO: {g_full['completions_per_step']} "
        f"completions of up to {args.grpo_max_completion} tokens a step, {args.grpo_steps} steps; first step excluded.",
        "",
        "| measurement | fused (TRL) | full_logits | full / fused |",
        "|---|---:|---:|---:|",
        f"| SFT trainer, tokens/s | {fused['tokens_per_s']:,.1f} | {full['tokens_per_s']:,.1f} | "
        f"{full['tokens_per_s'] / fused['tokens_per_s']:.2f}x |",
    ]
    for part in ("step_s", "generation_s", "optimisation_s"):
        lines.append(
            f"| GRPO {part.replace('_s', '')}, seconds per step | {g_fused[part]:.2f} | {g_full[part]:.2f} | "
            f"{g_fused[part] / g_full[part] if g_full[part] else float('nan'):.2f}x |"
        )
    lines.append(f"| raw forward+backward+AdamW (the bench's own loop), tokens/s | – | {base:,.1f} | – |")
    target = full["tokens_per_s"] / base
    report["targets"] = [
        {
            "target": "SFT trainer tokens/s >= 80 % of raw bf16 fwd+bwd",
            "value": target,
            "verdict": verdict(target, 0.8),
        }
    ]
    lines += [
        "",
        f"Target SFT trainer >= 80 % of raw bf16: {100 * target:.0f} %, {verdict(target, 0.8)}.",
        "",
    ]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    run_folders.write_json_atomic(out.with_suffix(".json"), report)
    out.with_suffix(".md").write_text("\n".join(lines))
    logger.info("wrote %s.json and %s.md", out, out)
    return report


def matmul_gflops(n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """The bf16 FLOP rate of one large square matmul on these cores (best and mean of ``repeats``)."""
    import torch

    a, b = torch.randn(n, n, dtype=torch.bfloat16), torch.randn(n, n, dtype=torch.bfloat16)
    a @ b  # warm-up
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return {"n": n, "best": max(rates), "mean": sum(rates) / len(rates)}


def decode_flops_per_token(model_path: str, context: float) -> float:
    """Multiply-adds x 2 of one decoded token: every linear layer and the output head (the embedding is
    a lookup), plus attention's scores and weighted sum over ``context`` cached positions."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_path)
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    q, kv = c.num_attention_heads * head_dim, c.num_key_value_heads * head_dim
    per_layer = c.hidden_size * (q + 2 * kv) + q * c.hidden_size + 3 * c.hidden_size * c.intermediate_size
    attention = 2 * c.num_attention_heads * head_dim * context
    return 2 * (c.num_hidden_layers * (per_layer + attention) + c.hidden_size * c.vocab_size)


def output_head_flops(model_path: str) -> float:
    """Multiply-adds x 2 of the output head for one position (hidden size x vocabulary)."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_path)
    return 2.0 * c.hidden_size * c.vocab_size


def spread(values: list[float]) -> dict[str, Any]:
    return {"runs": values, "mean": sum(values) / len(values), "min": min(values), "max": max(values)}


GRPO_SIDES = (("hf", "hf", False), ("cached_full_width", "cached", False), ("cached", "cached", True))


def decoding_comparison(
    args: BenchArguments, checkpoint: str, report: dict[str, Any], tmp: Path
) -> dict[str, Any]:
    """bf16: evaluation's generation and GRPO steps with the hf backend (model.generate, refilled batches)
    and the cached engine, ``repeats`` alternating runs each; greedy answers of both; decoding's FLOP rate
    against a large matmul's."""
    report["matmul_bf16_gflops"] = matmul_gflops()
    evals: dict[str, list[dict[str, Any]]] = {"hf": [], "cached": []}
    for k in range(args.repeats):
        for backend in ("hf", "cached") if k % 2 == 0 else ("cached", "hf"):
            logger.info("[bf16] evaluation generation, %s, run %d", backend, k + 1)
            evals[backend].append(eval_generation(checkpoint, args, "bf16", backend=backend))
    greedy = {b: eval_generation(checkpoint, args, "bf16", greedy=True, backend=b) for b in ("hf", "cached")}
    real = real_evaluations(checkpoint, args, tmp) if args.real_eval_limits else None
    # GRPO before (hf rollouts, TRL's shuffled full-width micro-batches) and after (cached rollouts,
    # micro-batches grouped by length), and the cached rollouts alone to tell the two changes apart.
    grpo = {}
    for side, backend, grouped in GRPO_SIDES:
        logger.info("[bf16] GRPO steps, %s: rollouts by %s, grouped micro-batches %s", side, backend, grouped)
        grpo[side] = grpo_steps(
            checkpoint, args, "bf16", tmp / f"grpo-{side}", rollout_backend=backend, length_grouped=grouped
        )
        gc.collect()  # the first trainer's model and optimizer state must not sit beside the second
    a, b = greedy["hf"], greedy["cached"]
    agreement = agreement_target(a["answers"], b["answers"])
    identical = sum(x == y for x, y in zip(a["token_ids"], b["token_ids"])) / len(a["token_ids"])
    for g in (a, b):
        del g["token_ids"]
    rate = {k: spread([r["tokens_per_s"] for r in v]) for k, v in evals.items()}
    # Mean context of a decoded token: the prompt plus half of what the rows generate on average.
    r0 = evals["cached"][0]
    _, prompts = eval_prompts(models.load_tokenizer(checkpoint), args.eval_prompts, args.eval_task)
    context = sum(len(p) for p in prompts) / len(prompts) + r0["tokens"] / r0["rows"] / 2
    flops = decode_flops_per_token(checkpoint, context)
    decode_gflops = rate["cached"]["mean"] * flops / 1e9
    figures = {
        "eval_cached_over_hf": rate["cached"]["mean"] / rate["hf"]["mean"],
        "grpo_step_hf_over_cached": grpo["hf"]["step_s"] / grpo["cached"]["step_s"],
        # The bar must hold for every pairing of timed steps: each step's rollouts are a new sample of
        # lengths, so the slowest step after against the fastest before bounds the ratio from below.
        "grpo_step_hf_over_cached_low": min(grpo["hf"]["step_s_runs"]) / max(grpo["cached"]["step_s_runs"]),
        "grpo_generation_hf_over_cached": grpo["hf"]["generation_s"] / grpo["cached"]["generation_s"],
        "greedy_answer_agreement": agreement["value"],
        "greedy_identical_completions": identical,
        "decode_flops_per_token": flops,
        "decode_gflops_cached": decode_gflops,
        "decode_share_of_matmul": decode_gflops / report["matmul_bf16_gflops"]["best"],
    }
    report.update({"eval": rate, "eval_runs": evals, "greedy": greedy, "grpo": grpo, "figures": figures})
    real_rows = []
    decoding_target = (
        "decoding >= 50 % of a large bf16 matmul's FLOP rate",
        figures["decode_share_of_matmul"],
        0.5,
    )
    if real is not None:
        report["real_eval"] = real
        figures["real_eval_cached_over_hf"] = real["cached"]["tokens_per_s"] / real["hf"]["tokens_per_s"]
        engine = real["cached"].get("engine")
        if engine and engine.get("steps") and engine.get("prefill_positions"):
            # Where the real evaluation's time goes (the engine's own counters): reading prompts (every
            # position through the layers; the head on the last one only) and decoding steps.
            matmul = report["matmul_bf16_gflops"]["best"]
            head = output_head_flops(checkpoint)
            decode = engine["step_rows"] * flops / engine["step_s"] / 1e9
            prefill = engine["prefill_positions"] * (flops - head) / engine["prefill_s"] / 1e9
            figures.update(
                {
                    "real_eval_prompt_share_of_positions": engine["prefill_positions"]
                    / (engine["prefill_positions"] + engine["step_rows"]),
                    "real_eval_prefill_share_of_time": engine["prefill_s"]
                    / (engine["prefill_s"] + engine["step_s"]),
                    "real_eval_rows_per_step": engine["step_rows"] / engine["steps"],
                    "real_eval_decode_gflops": decode,
                    "real_eval_decode_share_of_matmul": decode / matmul,
                    "real_eval_prefill_gflops": prefill,
                    "real_eval_prefill_share_of_matmul": prefill / matmul,
                }
            )
            decoding_target = (
                "decoding steps of the real evaluation >= 50 % of a large bf16 matmul's FLOP rate",
                figures["real_eval_decode_share_of_matmul"],
                0.5,
            )
        real_rows = [
            ("real evaluation, cached >= 2.5x hf's tokens/s", figures["real_eval_cached_over_hf"], 2.5),
            (
                "real evaluation, cached >= 352.5 tokens/s (2.5x the proof's 141)",
                real["cached"]["tokens_per_s"],
                352.5,
            ),
        ]
    report["targets"] = [
        {"target": t, "value": v, "verdict": verdict(v, x)}
        for t, v, x in (
            *real_rows,
            ("evaluation generation, cached >= 2x hf (tokens/s)", figures["eval_cached_over_hf"], 2.0),
            (
                "GRPO step >= 2x faster (after: cached rollouts, grouped micro-batches; before: hf, full width), "
                "the fastest step before over the slowest after",
                figures["grpo_step_hf_over_cached_low"],
                2.0,
            ),
            decoding_target,
        )
    ]
    report["targets"].insert(-1, agreement)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    run_folders.write_json_atomic(out.with_suffix(".json"), report)
    out.with_suffix(".md").write_text(decoding_markdown(report, args))
    logger.info("wrote %s.json and %s.md", out, out)
    return report


def real_evaluations(checkpoint: str, args: BenchArguments, tmp: Path) -> dict[str, Any]:
    """eval/evaluate.py as the proof runs it, once with each backend into its own folder (same seeds):
    throughput from its results.json, and how many samples (by key) got the same answer and the same
    tokens from both."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out: dict[str, Any] = {}
    samples = {}
    for backend in ("hf", "cached"):
        folder = tmp / f"real-eval-{backend}"
        command = [
            sys.executable, str(root / "eval/evaluate.py"), "--config", str(root / "configs/eval/default.yaml"),
            "--model", checkpoint, "--output", str(folder), "--backend", backend,
            "--tasks", "chain,gsm8k", "--task_limits", *args.real_eval_limits.split(","),
            "--budgets", "off,32,64,128,none", "--methods", "no_think,budget_prompt,think",
            "--max_new_tokens", "224", "--batch_size", "64",
        ]  # fmt: skip
        logger.info("[bf16] real evaluation, %s: %s", backend, " ".join(command))
        subprocess.run(command, check=True, cwd=root)
        results = json.loads((folder / "results.json").read_text())
        throughput = results["throughput"]
        out[backend] = {
            **throughput,
            "tokens_per_s": throughput["tokens_per_second"],
            "command": " ".join(command[1:]),
        }
        with (folder / "samples.jsonl").open() as f:
            samples[backend] = {r["key"]: r for r in map(json.loads, f)}
    a, b = samples["hf"], samples["cached"]
    keys = sorted(a.keys() & b.keys())
    out["samples_compared"] = len(keys)
    out["same_answer"] = sum(a[k]["final_answer"] == b[k]["final_answer"] for k in keys) / len(keys)
    out["same_tokens"] = sum(a[k]["completion_ids"] == b[k]["completion_ids"] for k in keys) / len(keys)
    out["accuracy"] = {n: sum(s[k]["correct"] for k in keys) / len(keys) for n, s in samples.items()}
    return out


def provenance(r: dict[str, Any]) -> list[str]:
    """The machine, commit, command and model lines of a report."""
    return [
        f"Machine: {r['device']}; native bf16: {r['cpu_native_bf16']}; torch threads: {r['torch_threads']}.",
        f"Commit `{r['commit']}`. Command: `{r['command']}`. Model `{r['model']}`"
        + (f", checkpoint `{r['checkpoint']}`" if r["checkpoint"] else "")
        + ".",
    ]


def targets_table(targets: list[dict[str, Any]]) -> list[str]:
    """The Targets section: each target, its value and its verdict."""
    return [
        "## Targets",
        "",
        "| target | value | verdict |",
        "|---|---:|---|",
        *(
            f"| {t['target']} | {t['value']:.3f}"
            + (
                f" ({t['interval'][0]:.3f} to {t['interval'][1]:.3f}), n = {t['n']}"
                if "interval" in t
                else ""
            )
            + f" | {t['verdict']} |"
            for t in targets
        ),
    ]


def decoding_markdown(r: dict[str, Any], args: BenchArguments) -> str:
    e, g, fg = r["eval"], r["grpo"], r["figures"]

    def runs(x: dict[str, Any]) -> str:
        return f"{x['mean']:,.1f} ({x['min']:,.1f}–{x['max']:,.1f})"

    lines = [
        "# Decoding on the CPU: model.generate (hf) against the cached engine (bf16)",
        "",
        *provenance(r),
        f"Evaluation: {args.eval_prompts} {args.eval_task} test prompts with free thinking, up to {args.eval_max_new_tokens} "
        f"new tokens, {args.eval_batch} rows in flight, temperature 0.6, top-p 0.95, top-k 20, per-sample seeds; "
        f"{args.repeats} runs a side, alternating (mean, min–max). GRPO: {g['cached']['completions_per_step']} "
        f"completions of up to {args.grpo_max_completion} tokens a step, {g['cached']['steps_timed']} timed steps a side.",
        "",
        "| measurement | hf (before) | cached (after) | after / before |",
        "|---|---:|---:|---:|",
    ]
    real = r.get("real_eval")
    if real:
        h, c = real["hf"], real["cached"]
        lines.append(
            f"| real evaluation ({real['samples_compared']:,} samples), tokens/s | {h['tokens_per_s']:,.1f} | "
            f"{c['tokens_per_s']:,.1f} | {c['tokens_per_s'] / h['tokens_per_s']:.2f}x |"
        )
        lines.append(
            f"| real evaluation, seconds generating | {h['seconds']:,.0f} | {c['seconds']:,.0f} | – |"
        )
    lines += [
        f"| evaluation generation, tokens/s | {runs(e['hf'])} | {runs(e['cached'])} | {fg['eval_cached_over_hf']:.2f}x |",
    ]
    if "step_s_runs" in g["hf"]:
        h, c = g["hf"]["step_s_runs"], g["cached"]["step_s_runs"]
        lines.append(
            f"| GRPO step, each timed step, s | {', '.join(f'{x:.1f}' for x in h)} | "
            f"{', '.join(f'{x:.1f}' for x in c)} | {fg['grpo_step_hf_over_cached_low']:.2f}x at least |"
        )
    for part in ("step_s", "generation_s", "optimisation_s"):
        h, c = g["hf"][part], g["cached"][part]
        lines.append(
            f"| GRPO {part.replace('_s', '')}, seconds per step | {h:.2f} | {c:.2f} | {h / c if c else float('nan'):.2f}x faster |"
        )
    if "cached_full_width" in g:
        w = g["cached_full_width"]
        lines += [
            "",
            "GRPO before: rollouts by `model.generate` (hf), TRL's shuffled micro-batches at the full width of "
            "the step's longest prompt and completion; after: rollouts by the cached engine, micro-batches "
            "grouped by length and trimmed (`length_grouped_micro_batches`). The cached rollouts with TRL's "
            f"micro-batches: step {w['step_s']:.2f} s, generation {w['generation_s']:.2f} s, optimisation "
            f"{w['optimisation_s']:.2f} s, so the grouping alone takes the optimisation from "
            f"{w['optimisation_s']:.2f} to {g['cached']['optimisation_s']:.2f} s.",
        ]
    mm = r["matmul_bf16_gflops"]
    if real:
        lines += [
            "",
            f"Real evaluation: `{real['cached']['command']}` (and `--backend hf`), chain and GSM8K at thinking off, "
            f"budgets 32/64/128 and free thinking, per-sample seeds: the same answer on "
            f"{100 * real['same_answer']:.1f} % of samples, the same tokens on {100 * real['same_tokens']:.1f} %; "
            f"accuracy hf {100 * real['accuracy']['hf']:.1f} %, cached {100 * real['accuracy']['cached']:.1f} %.",
        ]
        if "real_eval_decode_gflops" in fg:
            lines.append(
                f"Where the cached real evaluation's time went (the engine's counters): reading prompts "
                f"{100 * fg['real_eval_prefill_share_of_time']:.0f} % of the time, "
                f"{100 * fg['real_eval_prompt_share_of_positions']:.0f} % of the positions through the layers, at "
                f"{fg['real_eval_prefill_gflops']:,.0f} GFLOP/s ({100 * fg['real_eval_prefill_share_of_matmul']:.0f} % "
                f"of the matmul below); decoding steps {fg['real_eval_rows_per_step']:.1f} rows a step on average, "
                f"{fg['real_eval_decode_gflops']:,.0f} GFLOP/s ({100 * fg['real_eval_decode_share_of_matmul']:.0f} %)."
            )
    lines += [
        "",
        f"Greedy, {len(r['greedy']['hf']['answers'])} problems: boxed answers agree on {100 * fg['greedy_answer_agreement']:.0f} %, "
        f"identical completions {100 * fg['greedy_identical_completions']:.0f} %.",
        f"FLOP rate: a {mm['n']}² bf16 matmul {mm['best']:,.0f} GFLOP/s (best of 5); decoding with the cached engine "
        f"{fg['decode_gflops_cached']:,.0f} GFLOP/s ({fg['decode_flops_per_token'] / 1e9:.3f} GFLOP a token, linear "
        f"layers, output head and attention over the mean context): {100 * fg['decode_share_of_matmul']:.0f} %.",
        "",
        *targets_table(r["targets"]),
    ]
    return "\n".join(lines) + "\n"


def markdown(r: dict[str, Any]) -> str:
    def f(x, d=1):
        return "–" if x is None else f"{x:,.{d}f}"

    lines = [
        "# CPU speed: fp32 against the fast path (bf16)",
        "",
        *provenance(r),
        f"Mean training row: {r['mean_row_tokens']:.0f} tokens; "
        f"{r['settings']['batch_rows']} rows a step; first step of each timing excluded.",
        "",
        "| measurement | fp32 | fast path (bf16) | fast / fp32 |",
        "|---|---:|---:|---:|",
    ]
    for name, key, unit in (
        ("raw forward+backward+AdamW", "raw_train", "tokens_per_s"),
        ("SFT trainer (ThinkBudgetSFTTrainer, project config)", "sft_trainer", "tokens_per_s"),
        ("evaluation generation (hf backend, refilled batches)", "eval", "tokens_per_s"),
    ):
        a, b = r[f"{key}_fp32"][unit], r[f"{key}_bf16"][unit]
        lines.append(f"| {name}, tokens/s | {f(a)} | {f(b)} | {b / a:.2f}x |")
    g32, g16 = r["grpo_fp32"], r["grpo_bf16"]
    for part in ("step_s", "generation_s", "scoring_s", "optimisation_s"):
        lines.append(
            f"| GRPO {part.replace('_s', '')}, seconds per step | {f(g32[part], 2)} | {f(g16[part], 2)} | "
            f"{(g32[part] / g16[part]) if g16[part] else float('nan'):.2f}x |"
        )
    lines += [
        f"| plain bf16 `model.generate`, fixed length, tokens/s | – | {f(r['plain_generate_bf16']['tokens_per_s'])} | – |",
        "",
        f"GRPO: {g16['completions_per_step']} completions a step ({g16['generated_tokens_per_step']:.0f} generated "
        "tokens a step in bf16); rollouts in bf16 come from a bf16 copy of the policy.",
        "",
        *targets_table(r["targets"]),
    ]
    fg = r["figures"]
    lines += [
        "",
        f"Loss of the first {len(r['quality_loss_fp32'])} steps (same batches and seed): mean per-step relative "
        f"difference {100 * fg['loss_mean_relative_difference']:.2f} %, max {100 * fg['loss_max_relative_difference']:.2f} %, "
        f"difference of the mean loss {100 * fg['loss_mean_over_steps_relative_difference']:.2f} %.",
        f"Greedy evaluation ({len(r['greedy_fp32']['answers'])} problems): boxed answers agree on "
        f"{100 * fg['greedy_answer_agreement']:.0f} %, identical completions {100 * fg['greedy_identical_completions']:.0f} %; "
        f"accuracy fp32 {100 * r['greedy_fp32']['accuracy']:.0f} %, bf16 {100 * r['greedy_bf16']['accuracy']:.0f} %.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    run_folders.setup_logging()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    (bench_args,) = run_folders.parse_config([BenchArguments])
    main(bench_args)
