"""Benchmark evaluation's generation: the fastest backend against plain per-batch ``model.generate``.

    python scripts/bench_generation.py --model smollm2-135m --num_prompts 256 --max_new_tokens 256 \
        --output results/bench_generation.json                     # on a GPU: auto = vllm or paged
    python scripts/bench_generation.py --model tiny-llama --num_prompts 4 --max_new_tokens 8 \
        --fast_backend paged --output /tmp/bench.json                # CPU smoke run

Both sides get the same prompts (GSM8K test questions in the thinking prompt) and the same sampling
settings. The baseline is ``model.generate`` on consecutive batches of ``--batch_size`` prompts in the
given order (no length sorting); the fast side is ``thinkbudget.generation`` as eval/evaluate.py runs
it. Throughput = generated tokens (counted from the returned ids) / wall seconds, after one untimed
warm-up call each. Writes a JSON with both, their ratio, batch sizes, device, commit and command.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from thinkbudget import generation, models, run_folders, tasks
from thinkbudget.protocol import build_messages, render_prompt

logger = logging.getLogger("bench_generation")


@dataclass
class BenchArguments:
    model: str = field(
        default=models.DEFAULT_MODEL, metadata={"help": "Model alias, hub id or checkpoint path."}
    )
    task: str = field(default="gsm8k", metadata={"help": "Task whose test questions are the prompts."})
    num_prompts: int = field(default=256, metadata={"help": "Number of prompts (prompts)."})
    max_new_tokens: int = field(default=256, metadata={"help": "Generation limit per prompt (tokens)."})
    batch_size: int = field(
        default=32, metadata={"help": "Baseline batch size for plain model.generate (prompts)."}
    )
    fast_backend: str = field(
        default="auto", metadata={"help": "Backend to compare: auto, paged, vllm or hf."}
    )
    force_budget: int | None = field(
        default=None,
        metadata={"help": "Also force </think> after this many thinking tokens (tokens); none if unset."},
    )
    temperature: float = field(default=0.6, metadata={"help": "Sampling temperature (0 = greedy)."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling mass (probability)."})
    top_k: int = field(default=20, metadata={"help": "Top-k filtering (tokens; 0 = off)."})
    seed: int = field(default=0, metadata={"help": "Random seed."})
    dtype: str = field(
        default="auto", metadata={"help": "auto (bfloat16 on GPU, float32 on CPU) or a torch dtype."}
    )
    output: str = field(
        default="results/bench_generation.json", metadata={"help": "Where to write the JSON."}
    )


def timed(generator: generation.Generator, requests: list, batch_size: int, sort: bool) -> dict:
    """Generate all requests (after one untimed warm-up batch); tokens, seconds and tokens/s."""
    generator.generate(requests[: min(2, len(requests))])
    if sort:
        results, seconds = generation.generate_all(generator, requests, batch_size)
    else:  # the plain baseline: consecutive batches as given
        start, results = time.perf_counter(), []
        for lo in range(0, len(requests), batch_size):
            results += generator.generate(requests[lo : lo + batch_size])
        seconds = time.perf_counter() - start
    tokens = sum(len(r.token_ids) for r in results)
    return {
        "backend": generator.name,
        "batch_size": batch_size,
        "generated_tokens": tokens,
        "seconds": seconds,
        "tokens_per_second": tokens / seconds,
        "truncated_share": sum(r.finish_reason == "length" for r in results) / len(results),
    }


def main(args: BenchArguments) -> dict:
    import torch

    fast_backend = generation.resolve_backend(args.fast_backend)
    gpu = torch.cuda.is_available()
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if gpu else "float32")
    model, tokenizer = models.load_model_and_tokenizer(
        args.model, dtype=dtype, device_map="cuda" if gpu else None
    )
    model.eval()
    problems = tasks.load_problems(args.task, "test", args.num_prompts, seed=args.seed)
    requests = [
        generation.GenerationRequest(
            tokenizer(render_prompt(tokenizer, build_messages(p.question)), add_special_tokens=False)[
                "input_ids"
            ],
            args.force_budget,
        )
        for p in problems
    ]
    sampling = generation.SamplingSettings(
        args.max_new_tokens, args.temperature, args.top_p, args.top_k, args.seed
    )

    torch.manual_seed(args.seed)
    baseline = timed(
        generation.HFGenerator(tokenizer, sampling, model=model), requests, args.batch_size, sort=False
    )
    logger.info("plain model.generate: %.1f tokens/s", baseline["tokens_per_second"])
    fast_gen = generation.build_generator(
        fast_backend,
        model=model,
        tokenizer=tokenizer,
        sampling=sampling,
        model_path=models.resolve_model_path(args.model),
    )
    try:
        torch.manual_seed(args.seed)
        fast = timed(fast_gen, requests, fast_gen.default_batch_size, sort=True)
    finally:
        fast_gen.close()
    logger.info("%s: %.1f tokens/s", fast_backend, fast["tokens_per_second"])
    report = {
        "model": args.model,
        "device": run_folders.device_description(),
        "commit": run_folders.git_commit(),
        "command": run_folders.command_line(),
        "settings": asdict(args),
        "num_prompts": len(requests),
        "mean_prompt_tokens": sum(len(r.prompt_ids) for r in requests) / len(requests),
        "baseline": baseline,
        "fast": fast,
        "speedup": fast["tokens_per_second"] / baseline["tokens_per_second"],
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    run_folders.write_json_atomic(out, report)
    logger.info("speedup %.2fx; wrote %s", report["speedup"], out)
    return report


if __name__ == "__main__":
    run_folders.setup_logging()
    (bench_args,) = run_folders.parse_config([BenchArguments])
    main(bench_args)
