"""GRPO with length rewards: teach the SFT model to keep its thinking within the budget in the prompt.

Each RL row of the prepared dataset (``dataset_path``: a ``data/prepare.py`` folder or a Hugging Face
dataset name) is a prompt rendered with its own controls (thinking on/off, a budget or none; see
thinkbudget.data) and a gold answer. TRL's GRPOTrainer samples ``num_generations`` completions per
prompt and scores them with the rewards named in the recipe (thinkbudget.rewards: correctness, format,
mode compliance and L1/ThinkPrune/DAPO/Kimi/cosine length terms, all on thinking *tokens* from the
one parser). Optionally rollouts are budget-forced (Elastic Reasoning).

    python data/prepare.py --config configs/data/rl.yaml       # the mix, once (data/prepared/rl)
    accelerate launch train/rl.py --config configs/rl/smollm2-135m.yaml
    python data/prepare.py --config configs/data/smoke.yaml    # the smoke mix, once (data/prepared/smoke)
    accelerate launch --num_processes 1 --cpu train/rl.py --config configs/rl/smoke.yaml     # CPU, ~1 min
    accelerate launch train/rl.py --config configs/rl/smollm2-135m.yaml --resume_from_checkpoint true
    accelerate launch --config_file configs/accelerate/ddp.yaml train/rl.py --config configs/rl/smollm2-135m.yaml

CLI flags override the YAML (``--max_steps 2 --bf16 false``); LoRA with ``--use_peft true``; vLLM with
``--use_vllm true --vllm_mode colocate``. Output (``output_dir``): checkpoint-N folders, the final model +
tokenizer + chat template (LoRA merged), tensorboard logs under ``runs/`` (rewards, accuracy, thinking
tokens and within-budget share per budget, no-think compliance, generation time), and
``run_summary.json`` (generation vs optimisation time, generated tokens/s, config, commit, device).
"""

from __future__ import annotations

import logging
import time

if __name__ == "__main__":  # `python train/rl.py` / `accelerate launch train/rl.py` from any folder
    from thinkbudget.run_folders import die_with_parent as _die_with_parent

    _die_with_parent()  # before the slow imports: a stage whose pipeline is gone must not start training

from thinkbudget.hardware import training_callbacks
from thinkbudget.rl import (
    CONFIG_CLASSES,
    RLModelConfig,
    RLScriptArguments,
    StepTimer,
    ThinkBudgetGRPOTrainer,
    ThinkGRPOConfig,
    check_auto_rows,
    check_dataset_budgets,
    timing_summary,
    validate_run,
)
from thinkbudget.run_folders import (
    clear_output_dir,
    run_entry_point,
    start_training_run,
    write_run_summary,
)

logger = logging.getLogger("train.rl")


def main(script_args: RLScriptArguments, training_args: ThinkGRPOConfig, model_args: RLModelConfig) -> dict:
    """Train, save the final model in ``training_args.output_dir`` and return the run summary."""
    # 1. Everything that can be wrong with the request fails here, before a tokenizer or model loads;
    #    nothing is written until every check has passed.
    try:
        validate_run(script_args, training_args)
    except ValueError as e:
        raise SystemExit(f"invalid RL config: {e}") from None
    model_path, resume, out = start_training_run(model_args.model_name_or_path, training_args)

    # 2. Data: the prepared rows, one pre-rendered prompt each (its own mode and budget), and their
    #    budgets against max_completion_length, checked before the model loads.
    from thinkbudget.data import load_prepared
    from thinkbudget.models import load_model_and_tokenizer, save_final_model

    try:
        train_dataset = load_prepared(script_args.dataset_path, "rl", "train")
        check_dataset_budgets(train_dataset, training_args.max_completion_length)
        check_auto_rows(
            train_dataset,
            script_args.auto_decision_sampling,
            training_args.num_generations,
            training_args.use_vllm,
            script_args.reward_funcs,
        )
    except ValueError as e:
        raise SystemExit(f"invalid RL dataset: {e}") from None
    if len(train_dataset) == 0:
        raise SystemExit(f"dataset_path: {script_args.dataset_path} holds no RL training rows")
    modes = {m: train_dataset["mode"].count(m) for m in ("think", "no_think", "auto")}
    logger.info("RL rows: %d (%s)", len(train_dataset), modes)

    # 3. Policy (think tokens and chat template installed), rewards, optional LoRA.
    model, tokenizer = load_model_and_tokenizer(
        model_path,
        dtype=model_args.dtype,
        trust_remote_code=training_args.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
    )
    tokenizer.padding_side = "left"  # GRPO generates from left-padded prompts
    from trl import get_peft_config

    from thinkbudget.rewards import get_reward_funcs

    reward_funcs = get_reward_funcs(script_args.reward_funcs, tokenizer, script_args.reward_params())
    peft_config = get_peft_config(model_args) if model_args.use_peft else None

    # 4. Train. Only now is the output folder touched (an old run's checkpoints go on overwrite; a
    #    kill's leftovers go).
    clear_output_dir(out, overwrite=training_args.overwrite_output_dir, resuming=resume is not None)
    timer = StepTimer()
    callbacks = [timer, *training_callbacks(training_args)]  # CPU: release freed memory each step
    trainer = ThinkBudgetGRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
        budget_forcing_rollouts=script_args.budget_forcing_rollouts,
        auto_decision_sampling=script_args.auto_decision_sampling,
    )
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - t0

    # 5. Save a checkpoint that plain transformers/vLLM load (LoRA merged into the weights).
    save_final_model(trainer, tokenizer, out, lora=peft_config is not None)

    # 6. The run summary: where the time went, and the last logged figures.
    import torch

    world_tokens = trainer.accelerator.gather(
        torch.tensor([trainer.run_totals["generated_tokens"]], device=trainer.accelerator.device)
    )
    last = {}
    for entry in trainer.state.log_history:
        last.update({k: v for k, v in entry.items() if isinstance(v, int | float)})
    summary = write_run_summary(
        trainer,
        out,
        "rl",
        {
            "model": model_args.model_name_or_path,
            "model_path": model_path,
            "peft": peft_config is not None,
            "resumed_from": resume,
            "initial_global_step": timer.initial_global_step,
            "global_step": trainer.state.global_step,
            "train_rows": len(train_dataset),
            "rows_by_mode": modes,
            "rewards": dict(
                zip(script_args.reward_funcs, training_args.reward_weights or [1.0] * len(reward_funcs))
            ),
            "budget_forcing_rollouts": script_args.budget_forcing_rollouts,
            "auto_decision_sampling": script_args.auto_decision_sampling,
            "train_runtime_s": round(result.metrics.get("train_runtime", wall), 3),
            "timing": timing_summary(trainer.run_totals, timer, int(world_tokens.sum().item())),
            "last_logged": {
                k: v for k, v in last.items() if k.startswith(("rewards/", "thinkbudget/", "reward"))
            },
        },
        script_args=script_args,
        training_args=training_args,
        model_args=model_args,
    )
    if trainer.accelerator.is_main_process:
        logger.info(
            "saved %s: %d steps, %.1f s (generation %.0f %%)",
            out,
            trainer.state.global_step,
            wall,
            100 * (summary["timing"]["generation_share"] or 0),
        )
    return summary


def cli(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` (default: the command line) and run :func:`main`; bad input exits with a message."""
    return run_entry_point(main, CONFIG_CLASSES, argv)


if __name__ == "__main__":
    cli()
