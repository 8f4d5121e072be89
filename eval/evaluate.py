"""Evaluate a model: accuracy and tokens spent, per task, thinking mode and budget.

    python eval/evaluate.py --model smollm2-135m --tasks gsm8k,chain --budgets off,32,64,128,256,none \
        --limit 100 --output results/eval/base
    python eval/evaluate.py --config configs/eval/smoke.yaml --output /tmp/eval-smoke
    python eval/evaluate.py --run runs/rl --budgets off,64,none --limit 50   # every checkpoint-* of a run
    python eval/evaluate.py --list-tasks
    python eval/evaluate.py --config configs/scorer/data-smoke.yaml --output runs/scorer-data/smoke  # --split train: scorer data

Methods (``--methods``) and budgets (``--budgets``): ``off`` runs ``no_think`` (kwargs switch, the empty
think block pre-filled) and ``no_think_flag`` (``/no_think`` flag only); an integer B runs
``budget_prompt`` (B stated in the prompt) and ``budget_forcing`` (unbudgeted prompt, ``</think>``
forced at B thinking tokens); ``none`` runs ``think`` (no budget). See thinkbudget/evaluation.py.

Writes into ``--output``: results.json (rows per task/method/budget, config, throughput), samples.jsonl
(every sample; a killed run resumes from it), summary.md and accuracy_vs_tokens.png.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    from thinkbudget.run_folders import die_with_parent as _die_with_parent

    _die_with_parent()  # before the slow imports (see thinkbudget.run_folders.die_with_parent)

from thinkbudget import evaluation, generation, models, run_folders, tasks  # noqa: E402
from thinkbudget.eval_config import CONFIG_CLASSES, EvalArguments  # noqa: E402
from thinkbudget.hardware import resolve_generation_dtype  # noqa: E402

logger = logging.getLogger("evaluate")
OUTPUT_FILES = ("results.json", "samples.jsonl", "summary.md", "accuracy_vs_tokens.png")
# hf generation keeps --batch_size rows in flight and refills finished ones from the requests it was
# handed; it is handed this many batches at a time (also the unit written to samples.jsonl).
HF_REFILL_CHUNKS = 4

# Settings that change what a sample is: resuming with different ones would mix two evaluations.
FINGERPRINT_FIELDS = (
    "system_prompt",
    "prefill_think",
    "temperature",
    "top_p",
    "top_k",
    "max_new_tokens",
    "seed",
    "split",
)
# Values of fingerprint fields added later, for folders written before them.
FINGERPRINT_DEFAULTS = {"split": "test"}


@dataclass
class Plan:
    """Validated arguments: what to evaluate, checked before any model loads."""

    tasks: list[str]
    conditions: list[evaluation.Condition]
    sampling: generation.SamplingSettings
    backend: str


def validate(args: EvalArguments) -> Plan:
    """Check every argument, raising ``ValueError`` with a message that names the bad value."""
    task_names = evaluation.split_list(args.tasks)
    if not task_names:
        raise ValueError("no tasks given (see --list-tasks)")
    for t in task_names:
        tasks.validate_task_name(t)
    budgets = evaluation.parse_budgets(args.budgets)
    conditions = evaluation.plan_conditions(task_names, budgets, evaluation.parse_methods(args.methods))
    if args.split not in tasks.SPLITS:
        raise ValueError(f"--split must be one of {', '.join(tasks.SPLITS)}, got {args.split!r}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive number of problems, got {args.limit}")
    tasks.check_counts_per_task("--task_limits", args.task_limits, task_names, minimum=1)
    if args.samples < 1:
        raise ValueError(f"--samples must be at least 1, got {args.samples}")
    if args.samples > 1 and args.temperature <= 0:
        raise ValueError("--samples > 1 needs --temperature > 0 (greedy decoding repeats the same answer)")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max_new_tokens must be positive (tokens), got {args.max_new_tokens}")
    if args.best_of_n_scorer != "logprob" and not Path(args.best_of_n_scorer).is_dir():
        raise ValueError(
            f"--best_of_n_scorer must be 'logprob' or a reward-model folder; {args.best_of_n_scorer!r} is neither"
        )
    check_dtype(args.dtype)
    sampling = generation.SamplingSettings(
        args.max_new_tokens, args.temperature, args.top_p, args.top_k, args.seed
    )
    return Plan(task_names, conditions, sampling, generation.resolve_backend(args.backend))


def check_model(name: str) -> str:
    """The resolved model path, or ``ValueError`` when it is not a model folder, an alias, or a hub
    model that is cached or downloadable (see :func:`thinkbudget.models.resolve_model_path`)."""
    try:
        return models.resolve_model_path(name)
    except FileNotFoundError as e:
        raise ValueError(str(e)) from None


TORCH_DTYPES = ("auto", "float32", "float16", "bfloat16", "float64", "float", "half", "double")


def check_dtype(dtype: str) -> None:
    if dtype not in TORCH_DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(TORCH_DTYPES)}, got {dtype!r}")


def check_output(out: Path, model_path: str, args: EvalArguments) -> None:
    """Refuse a folder that holds another model's (or other settings') results unless --overwrite, or
    that cannot be written. Changes nothing (:func:`prepare_output` does, once every check passed)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {out} is a file, not a folder")
    results_file = out / "results.json"
    if args.overwrite:
        pass
    elif results_file.is_file():
        old = run_folders.read_json_object(results_file)
        if old is None:
            raise ValueError(
                f"{results_file} is not a JSON object (not made by this script?); pass --overwrite"
            )
        if old.get("model_path") != model_path:
            raise ValueError(
                f"{out} holds results of model {old.get('model')!r}, not {model_path!r}; "
                "pass --overwrite to replace them or choose another --output"
            )
        old_cfg = old.get("config", {})
        changed = [
            f"{k}: {old_cfg.get(k, FINGERPRINT_DEFAULTS.get(k))!r} -> {getattr(args, k)!r}"
            for k in FINGERPRINT_FIELDS
            if old_cfg.get(k, FINGERPRINT_DEFAULTS.get(k)) != getattr(args, k)
        ]
        if changed:
            raise ValueError(
                f"{out} was evaluated with other settings ({'; '.join(changed)}); pass --overwrite or change --output"
            )
    elif (out / "samples.jsonl").exists():
        raise ValueError(
            f"{out} has samples.jsonl but no results.json (not made by this script?); pass --overwrite"
        )
    try:
        run_folders.check_creatable(out, what="--output")
    except SystemExit as e:
        raise ValueError(str(e)) from None


def prepare_output(out: Path, model_path: str, args: EvalArguments) -> None:
    """:func:`check_output`, then clear the evaluation files on --overwrite and create the folder."""
    check_output(out, model_path, args)
    if args.overwrite:
        for f in OUTPUT_FILES:
            if (out / f).exists():
                (out / f).unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--output {out}: cannot create the folder ({e.strerror or e})") from None


@dataclass(frozen=True)
class Sample:
    """One sample to exist in samples.jsonl: a problem under a condition, answered the index-th time."""

    key: str
    condition: evaluation.Condition
    problem: tasks.Problem
    index: int
    prompt: evaluation.Prompt


def load_test_problems(args: EvalArguments, plan: Plan) -> dict[str, list[tasks.Problem]]:
    """The problems of every task (``args.split``, the test split unless scorer data is being made); a
    task without any is an error (an evaluation of nothing must not be written as a complete one)."""
    limits = dict(zip(plan.tasks, args.task_limits)) if args.task_limits else {}
    problems = {
        t: tasks.load_problems(t, args.split, limits.get(t, args.limit), seed=args.seed) for t in plan.tasks
    }
    empty = [t for t, ps in problems.items() if not ps]
    if empty:
        raise ValueError(
            f"no {args.split} problems in task(s) {', '.join(empty)} (an empty file, or no row in that "
            "split?); nothing to evaluate"
        )
    return problems


def plan_samples(
    args: EvalArguments, plan: Plan, tokenizer: Any, problems: dict[str, list[tasks.Problem]] | None = None
) -> list[Sample]:
    """Every sample of the evaluation (prompts rendered once per problem and condition)."""
    problems = problems if problems is not None else load_test_problems(args, plan)
    samples = []
    for cond in plan.conditions:
        for p in problems[cond.task]:
            prompt = evaluation.build_prompt(
                tokenizer,
                p.question,
                cond,
                system_prompt=args.system_prompt,
                prefill_think=args.prefill_think,
            )
            for i in range(args.samples):
                key = evaluation.sample_key(cond.task, cond.method, cond.budget_label, p.id, i)
                samples.append(Sample(key, cond, p, i, prompt))
    return samples


def generation_order(pending: list[Sample]) -> list[Sample]:
    """Samples grouped by condition, then sorted by prompt length: a batch pads little, and since a
    batch runs until its longest answer ends, it holds answers of one kind (thinking off, one budget)."""
    return sorted(
        pending,
        key=lambda s: (s.condition.task, s.condition.method, s.condition.budget or 0, len(s.prompt.ids)),
    )


def evaluate_model(args: EvalArguments, plan: Plan, model_name: str, out: Path) -> dict[str, Any]:
    """Generate what samples.jsonl lacks, then aggregate and write every output file."""
    # Every check, the problems and the tokenizer come before the output folder is created, so that an
    # early failure leaves nothing behind.
    model_path = check_model(model_name)
    check_output(out, model_path, args)
    problems = load_test_problems(args, plan)
    tokenizer = models.load_tokenizer(model_path)
    planned = plan_samples(args, plan, tokenizer, problems)
    prepare_output(out, model_path, args)
    samples_path = out / "samples.jsonl"
    done = evaluation.load_records(samples_path)
    pending = generation_order([s for s in planned if s.key not in done])
    logger.info(
        "%s: %d samples planned, %d already in %s, %d to generate",
        model_name,
        len(planned),
        len(planned) - len(pending),
        samples_path,
        len(pending),
    )

    base = {
        "model": model_name,
        "model_path": model_path,
        "commit": run_folders.git_commit(),
        "device": run_folders.device_description(),
    }
    config = {
        **asdict(args),
        "tasks": plan.tasks,
        "budgets": [str(b) for b in evaluation.parse_budgets(args.budgets)],
        "methods": evaluation.parse_methods(args.methods),
    }
    generated_tokens, seconds, engine_stats = 0, 0.0, {}
    if pending:
        # Written first so that the folder names its model and settings even if this run is killed.
        run_folders.write_json_atomic(
            out / "results.json", {**base, "backend": plan.backend, "config": config, "complete": False}
        )
        generated_tokens, seconds, engine_stats = generate_pending(
            args, plan, model_path, tokenizer, pending, samples_path
        )

    records = evaluation.load_records(samples_path)
    keys = {s.key for s in planned}
    rows = evaluation.aggregate(
        (r for k, r in records.items() if k in keys),
        plan.conditions,
        samples=args.samples,
        best_of_n_scorer="logprob" if args.best_of_n_scorer == "logprob" else "reward_model",
        ci_resamples=args.ci_resamples,
        seed=args.seed,
    )
    results = {
        **base,
        "backend": plan.backend,
        "command": run_folders.command_line(),
        "config": config,
        "sampling": asdict(plan.sampling),
        "rows": rows,
        "throughput": {
            "generated_tokens": generated_tokens,
            "seconds": seconds,
            "tokens_per_second": generated_tokens / seconds if seconds > 0 else None,
            "samples_generated": len(pending),
            "samples_resumed": len(planned) - len(pending),
            # cached backend: prompt positions read and decoding steps, each with its seconds
            **({"engine": engine_stats} if engine_stats else {}),
        },
        "complete": keys <= records.keys(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    evaluation.validate_results(results)
    run_folders.write_json_atomic(out / "results.json", results)
    (out / "summary.md").write_text(evaluation.summary_markdown(results))
    plots().plot_accuracy_vs_tokens(results, out / "accuracy_vs_tokens.png")
    logger.info("wrote %s (results.json, samples.jsonl, summary.md, accuracy_vs_tokens.png)", out)
    return results


def generate_pending(
    args: EvalArguments,
    plan: Plan,
    model_path: str,
    tokenizer: Any,
    pending: list[Sample],
    samples_path: Path,
) -> tuple[int, float, dict[str, float]]:
    """Generate ``pending`` in batches, appending each batch's records to samples.jsonl at once.
    Returns the generated tokens, the seconds spent generating and the cached engine's counters
    (:attr:`thinkbudget.generation.CachedGenerator.engine_stats`; empty for the other backends)."""
    import torch
    from tqdm import tqdm
    from transformers import set_seed

    set_seed(args.seed)
    gpu = torch.cuda.is_available()
    model = None
    dtype = resolve_generation_dtype(args.dtype, on_gpu=gpu)
    if plan.backend != "vllm":  # vLLM loads the checkpoint itself
        model, _ = models.load_model_and_tokenizer(
            model_path, dtype=dtype, device_map="cuda" if gpu else None
        )
        model.eval()
    generator = generation.build_generator(
        args.backend,
        model=model,
        tokenizer=tokenizer,
        sampling=plan.sampling,
        model_path=model_path,
        cache_implementation=args.hf_cache_implementation,
        dtype=dtype,
        batch_rows=args.batch_size,
    )
    scorer = None
    if args.samples > 1 and args.best_of_n_scorer != "logprob":
        from thinkbudget.scorer import load_scorer

        scorer = load_scorer(args.best_of_n_scorer)
    # A GPU takes bigger hf batches; paged/vllm schedule internally, their batch is only the resume unit.
    plan.backend = generator.name  # auto resolved with the model in hand (results.json records it)
    batch_size = args.batch_size or generator.default_batch_size * (4 if gpu and plan.backend == "hf" else 1)
    # hf keeps batch_size rows in flight and refills them: hand it more at once. cached gets every pending
    # request in one stream; batch_size is only how many finished samples are written at a time.
    if plan.backend in ("hf", "cached"):
        batch_size *= HF_REFILL_CHUNKS
    tokens, seconds = 0, 0.0
    try:
        with tqdm(
            total=len(pending), unit="sample", desc=f"generating ({plan.backend})", dynamic_ncols=True
        ) as bar:
            requests = [
                generation.GenerationRequest(
                    s.prompt.ids, s.prompt.force_budget, seed=generation.sample_seed(args.seed, s.key)
                )
                for s in pending
            ]
            for indices, outputs, spent in in_batches(generator, requests, batch_size):
                batch = [pending[i] for i in indices]
                seconds += spent
                tokens += sum(len(o.token_ids) for o in outputs)
                records = [
                    evaluation.make_record(
                        tokenizer,
                        condition=s.condition,
                        problem=s.problem,
                        sample_idx=s.index,
                        prompt=s.prompt,
                        token_ids=o.token_ids,
                        finish_reason=o.finish_reason,
                        forced=o.forced,
                        mean_logprob=o.mean_logprob,
                        answer_cap=args.answer_cap,
                    )
                    for s, o in zip(batch, outputs)
                ]
                if scorer is not None:  # question + completion, never the gold (thinkbudget.scorer)
                    for rec, (score, read) in zip(records, scorer.score_records(records)):
                        rec["reward_score"], rec["scorer_tokens"] = score, read
                evaluation.append_records(samples_path, records)
                bar.update(len(batch))
                bar.set_postfix(tok_s=f"{tokens / max(seconds, 1e-9):.0f}")
    finally:
        generator.close()
    return tokens, seconds, dict(getattr(generator, "engine_stats", {}))


def in_batches(
    generator: generation.Generator, requests: list[generation.GenerationRequest], batch_size: int
) -> Iterator[tuple[list[int], list[generation.GenerationResult], float]]:
    """(request indices, their results, seconds generating) for every ``batch_size`` finished requests,
    each batch written to samples.jsonl before the next. A streaming generator (cached) gets every
    request at once and stays full to the end; the others get one batch per call."""
    stream = getattr(generator, "stream", None)
    if stream is None:
        for lo in range(0, len(requests), batch_size):
            start = time.perf_counter()
            outputs = generator.generate(requests[lo : lo + batch_size])
            yield list(range(lo, lo + len(outputs))), outputs, time.perf_counter() - start
        return
    indices: list[int] = []
    outputs: list[generation.GenerationResult] = []
    start = time.perf_counter()
    for i, result in stream(requests):
        indices.append(i)
        outputs.append(result)
        if len(indices) == batch_size:
            yield indices, outputs, time.perf_counter() - start
            indices, outputs = [], []
            start = time.perf_counter()
    if indices:
        yield indices, outputs, time.perf_counter() - start


def evaluate_run(args: EvalArguments, plan: Plan) -> Path:
    """Evaluate every checkpoint-* of a training run and plot accuracy and thinking tokens over steps."""
    run = Path(args.run)
    checkpoints = sorted(
        (p for p in run.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    if not checkpoints:
        raise ValueError(f"{run} holds no checkpoint-<step> folders")
    root = Path(args.output) if args.output else run / "eval"
    points = []
    for ckpt in checkpoints:
        logger.info("evaluating %s", ckpt)
        results = evaluate_model(args, plan, str(ckpt.resolve()), root / ckpt.name)
        points.append((int(ckpt.name.split("-")[-1]), results))
    plots().write_training_curves(points, root)
    return root


def plots():
    """thinkbudget.plots (imported late because matplotlib is slow to load)."""
    from thinkbudget import plots as module

    return module


def main(args: EvalArguments) -> None:
    if args.list_tasks:
        print("\n".join(tasks.list_tasks()))
        return
    try:
        plan = validate(args)
        if args.run:
            if not Path(args.run).is_dir():
                raise ValueError(f"--run {args.run}: no such folder")
            evaluate_run(args, plan)
        else:
            if not args.output:
                raise ValueError("--output is required (the folder for results.json, samples.jsonl, ...)")
            check_model(args.model)
            evaluate_model(args, plan, args.model, Path(args.output))
    except (ValueError, FileNotFoundError) as e:  # bad input: the message, not a traceback
        raise SystemExit(f"evaluate.py: error: {e}") from None


if __name__ == "__main__":
    run_folders.die_with_parent()
    run_folders.setup_logging()
    (eval_args,) = run_folders.parse_config(CONFIG_CLASSES)
    main(eval_args)
