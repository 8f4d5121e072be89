"""Supervised fine-tuning: teach a small model to switch thinking on/off and to keep a token budget.

It reads a prepared dataset (``dataset_path``: a ``data/prepare.py`` folder or a Hugging Face dataset
name): the data mix (thinkbudget.data) renders each problem as a prompt with its controls (template
kwargs ``enable_thinking``/``thinking_budget`` or the ``/think``/``/no_think`` flags) and a target in the
protocol's format (``<think>`` trace ``</think>`` answer; thinking off keeps an empty think block, as in
Qwen3's thinking-mode fusion). TRL's SFTTrainer trains on the target's tokens only.

    python data/prepare.py --config configs/data/sft.yaml      # the mix, once (data/prepared/sft)
    accelerate launch train/sft.py --config configs/sft/smollm2-135m.yaml
    python data/prepare.py --config configs/data/smoke.yaml    # the smoke mix, once (data/prepared/smoke)
    accelerate launch --num_processes 1 --cpu train/sft.py --config configs/sft/smoke.yaml   # CPU, ~1 min
    accelerate launch train/sft.py --config configs/sft/smollm2-135m.yaml --resume_from_checkpoint true

CLI flags override the YAML (``--max_steps 3 --bf16 false``); LoRA with ``--use_peft true``.
Output (``output_dir``): checkpoint-N folders, the final model + tokenizer + chat template (LoRA merged
into the weights; the adapter alone under ``adapter/``), tensorboard logs under ``runs/``, and
``run_summary.json`` (runtime, tokens/s, loss, config, commit, device).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

if __name__ == "__main__":  # `python train/sft.py` / `accelerate launch train/sft.py` from any folder
    from thinkbudget.run_folders import die_with_parent as _die_with_parent

    _die_with_parent()  # before the slow imports: a stage whose pipeline is gone must not start training

from thinkbudget.hardware import training_callbacks
from thinkbudget.run_folders import (
    clear_output_dir,
    run_entry_point,
    start_training_run,
    write_run_summary,
)
from thinkbudget.sft import (
    CONFIG_CLASSES,
    SFTModelConfig,
    SFTScriptArguments,
    ThinkSFTConfig,
    count_rows,
    expose_output_head_bias,
    lora_config,
    sequence_lengths,
    think_token_ids,
    tokenize_dataset,
)

logger = logging.getLogger("train.sft")


def main(script_args: SFTScriptArguments, training_args: ThinkSFTConfig, model_args: SFTModelConfig) -> dict:
    """Train, save the final model in ``training_args.output_dir`` and return the run summary."""
    # 1. Everything that can be wrong with the request fails here, before a tokenizer or model loads;
    #    nothing is written until every check has passed (the config's own fields were checked when parsed).
    model_path, resume, out = start_training_run(model_args.model_name_or_path, training_args)

    # 2. Data: the prepared rows (data/prepare.py wrote them; the mix is the data stage's), tokenized
    #    prompt and completion separately, as inference sees them (see thinkbudget/sft.py).
    from thinkbudget.data import load_prepared
    from thinkbudget.models import load_model_and_tokenizer, load_tokenizer, save_final_model

    tokenizer = load_tokenizer(model_path, trust_remote_code=training_args.trust_remote_code)
    eos = training_args.eos_token or tokenizer.eos_token
    if tokenizer.convert_tokens_to_ids(eos) in (None, tokenizer.unk_token_id):
        raise SystemExit(f"eos_token: {eos!r} is not a token of {model_path}'s tokenizer")
    try:
        train_rows = load_prepared(script_args.dataset_path, "sft", "train")
    except ValueError as e:  # missing or malformed: its message and the prepare command, not a traceback
        raise SystemExit(f"invalid SFT data: {e}") from None
    if len(train_rows) == 0:
        raise SystemExit(f"dataset_path: {script_args.dataset_path} holds no SFT training rows")
    train_dataset = tokenize_dataset(train_rows, tokenizer, eos, num_proc=training_args.dataset_num_proc)
    eval_dataset = None
    if training_args.eval_strategy != "no":
        try:
            eval_rows = load_prepared(script_args.dataset_path, "sft", "test")
        except ValueError as e:
            raise SystemExit(f"invalid SFT data: {e}") from None
        eval_dataset = tokenize_dataset(eval_rows, tokenizer, eos, num_proc=training_args.dataset_num_proc)
    lengths = sequence_lengths(train_dataset, training_args.max_length)
    logger.info(
        "training rows: %d by mode %s; lengths %s", len(train_rows), count_rows(train_rows, "mode"), lengths
    )

    # 3. Model (think tokens added and embeddings resized by load_model_and_tokenizer) and the optional LoRA.
    model, tokenizer = load_model_and_tokenizer(
        model_path,
        dtype=model_args.dtype,
        trust_remote_code=training_args.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
    )
    peft_config = lora_config(model_args, tokenizer) if model_args.use_peft else None

    # 4. Train. SFTTrainer sees `input_ids` + `completion_mask`, so it only builds labels (-100 on the
    #    prompt), truncates to max_length and drops rows left without a supervised token.
    from thinkbudget.sft import ThinkBudgetSFTTrainer

    # Only now is the output folder touched (an old run's checkpoints go on overwrite; a kill's leftovers go).
    clear_output_dir(out, overwrite=training_args.overwrite_output_dir, resuming=resume is not None)
    callbacks = training_callbacks(training_args)  # CPU: release freed memory each step
    trainer = ThinkBudgetSFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    if peft_config is not None:
        expose_output_head_bias(trainer.model)
        if trainer.accelerator.is_main_process:
            trainer.model.print_trainable_parameters()
    # Tokens trained in this session (a resumed run restores the checkpoint's count inside train()).
    start_tokens = (
        json.loads((Path(resume) / "trainer_state.json").read_text()).get("num_input_tokens_seen", 0)
        if resume
        else 0
    )
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - t0

    # 5. Save a checkpoint that plain transformers/vLLM load (LoRA merged into the weights).
    save_final_model(trainer, tokenizer, out, lora=peft_config is not None)

    # 6. The run summary a person (or the pipeline) reads.
    tokens = trainer.state.num_input_tokens_seen - start_tokens
    summary = write_run_summary(
        trainer,
        out,
        "sft",
        {
            "model": model_args.model_name_or_path,
            "model_path": model_path,
            "peft": peft_config is not None,
            "resumed_from": resume,
            "global_step": trainer.state.global_step,
            "train_rows": len(train_rows),
            "train_rows_kept": len(trainer.train_dataset),  # rows with a supervised token after truncation
            "sequence_lengths_tokens": lengths,
            "rows_by_mode": count_rows(train_rows, "mode"),
            "rows_by_control": count_rows(train_rows, "control"),
            "train_runtime_s": round(result.metrics.get("train_runtime", wall), 3),
            "train_loss": result.metrics.get("train_loss"),
            "final_logged_loss": next(
                (h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None
            ),
            "train_tokens_this_session": tokens,
            "train_tokens_per_second": round(tokens / wall, 1) if wall > 0 and tokens else None,
            "think_token_ids": think_token_ids(tokenizer),
        },
        script_args=script_args,
        training_args=training_args,
        model_args=model_args,
    )
    if trainer.accelerator.is_main_process:
        logger.info("saved %s (loss %s, %.1f s)", out, summary["final_logged_loss"], wall)
    return summary


def cli(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` (default: the command line) and run :func:`main`; bad input exits with a message."""
    return run_entry_point(main, CONFIG_CLASSES, argv)


if __name__ == "__main__":
    cli()
