"""Train the process scorer on the policy's own answers: is each arithmetic line right, and the answer?

The data is the pairwise scorer's (``eval/evaluate.py --split train --samples N``, recipes
``configs/scorer/data-*.yaml``): answers to *training* problems, each labelled by the project's one scorer.
Every arithmetic line of an answer's thinking is labelled right or wrong by re-evaluating it
(:func:`thinkbudget.traces.line_verdicts`, the evaluation's step correctness), the answer's last token by
its correctness, and slipped copies of right answers add wrong lines. A two-label token-classification
head learns those labels (HF ``Trainer``); an answer's score is the smallest log-probability of "right"
over its steps. Why and how: :mod:`thinkbudget.process_scorer`.

    python eval/evaluate.py --config configs/scorer/data-smoke.yaml --output runs/scorer-data/smoke
    accelerate launch --num_processes 1 --cpu train/process_scorer.py --config configs/scorer/process-smoke.yaml
    accelerate launch train/process_scorer.py --config configs/scorer/process-smollm2-135m.yaml \
        --data_dirs runs/scorer-data/rl

Output (``output_dir``): checkpoint-N folders, the final scorer with its tokenizer (loads with
``AutoModelForTokenClassification``), ``scorer.json`` (``"kind": "process"``: ``eval/frontier.py --scorer``
and ``eval/evaluate.py --best_of_n_scorer`` read it), and ``run_summary.json`` (data counts, step accuracy
and pairwise accuracy on held-out training problems, loss, config, commit, device).
"""

from __future__ import annotations

import logging
import time

from thinkbudget.process_scorer import (
    CONFIG_CLASSES,
    IGNORE,
    PROCESS_KIND,
    ProcessScorer,
    ProcessScorerConfig,
    ProcessScorerScriptArguments,
    fit_logprob_prior,
    process_example,
    step_accuracy,
    step_counts,
    with_slips,
)
from thinkbudget.run_folders import run_entry_point, start_training_run, write_json_atomic, write_run_summary
from thinkbudget.scorer import (
    SCORER_CONFIG_FILE,
    SCORER_PREFIX,
    ScorerModelConfig,
    build_pairs,
    held_out_problem,
    scorer_data_and_start,
    scorer_model,
    share_ranked_right,
)

logger = logging.getLogger("train.process_scorer")


def main(
    script_args: ProcessScorerScriptArguments,
    training_args: ProcessScorerConfig,
    model_args: ScorerModelConfig,
) -> dict:
    """Train, save the final scorer in ``training_args.output_dir`` and return the run summary."""
    # 1. The data folders and the run folder are checked before anything loads.
    records, provenance, start_from = scorer_data_and_start(
        script_args.data_dirs, model_args.model_name_or_path
    )
    model_path, resume, out = start_training_run(start_from, training_args)

    # 2. Labelled answers: a share of problems is kept out to measure step and pairwise accuracy; slipped
    #    copies are made of training answers only (held-out figures are on the policy's own answers).
    frac = script_args.scorer_eval_fraction
    held = [r for r in records if held_out_problem(r, frac)]
    kept = [r for r in records if not held_out_problem(r, frac)]
    train_records = with_slips(kept, script_args.slips_per_right, seed=script_args.slip_seed)
    held_pairs = build_pairs(held, scope="condition", max_pairs_per_group=script_args.max_pairs_per_group)
    if script_args.logprob_prior and not held_pairs:
        raise SystemExit(
            "logprob_prior: the held-out training problems give no (right, wrong) pair to fit its weight on; "
            "raise scorer_eval_fraction or sample more answers per problem"
        )
    counts = {"train": step_counts(train_records), "held_out": step_counts(held)}
    counts["train"]["slipped_copies"] = len(train_records) - len(kept)
    logger.info("process scorer data: %s", counts)
    if not counts["train"]["lines_wrong"] and not (
        script_args.outcome_label and counts["train"]["answers_wrong"]
    ):
        raise SystemExit(f"no wrong step to learn from in the training answers ({counts['train']})")

    from datasets import Dataset

    from thinkbudget.models import load_tokenizer, save_final_model

    tokenizer = load_tokenizer(model_path, trust_remote_code=training_args.trust_remote_code)
    rows = [
        process_example(tokenizer, r, training_args.max_length, script_args.outcome_label)
        for r in train_records
    ]
    rows = [
        row for row in rows if any(label != IGNORE for label in row["labels"])
    ]  # no step: nothing to learn
    counts["train"]["rows"] = len(rows)
    train_dataset = Dataset.from_list(rows)

    # 3. The model: the checkpoint's weights under a fresh two-label token head (think tokens kept single).
    from transformers import (
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        Trainer,
    )

    model = scorer_model(
        AutoModelForTokenClassification,
        model_path,
        tokenizer,
        model_args,
        training_args,
        num_labels=2,
        id2label={0: "wrong", 1: "right"},
        label2id={"wrong": 0, "right": 1},
    )

    # 4. Train: cross-entropy at the labelled positions only (the collator pads labels with IGNORE).
    collator = DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORE, pad_to_multiple_of=16)
    trainer = Trainer(model=model, args=training_args, train_dataset=train_dataset, data_collator=collator)
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - t0

    # 5. Save a scorer that plain transformers loads, with how its input is built and scored.
    save_final_model(trainer, tokenizer, out, lora=False)
    scorer_config = {
        "kind": PROCESS_KIND,
        "max_length": training_args.max_length,
        "input": SCORER_PREFIX + "<pre-filled tokens + completion>",
        "steps": "the last token of each arithmetic line of the thinking, then the last token",
        "outcome_label": script_args.outcome_label,
        "logprob_weight": 0.0,  # score = process score + logprob_weight * mean_logprob (fit below when asked)  # false: the last token is no step (a line checker)
        "score": "the smallest log-probability of 'right' over the steps (log 1/2 without any)",
        "slips_per_right": script_args.slips_per_right,
        "trained_on": [p["dir"] for p in provenance],
    }

    # 6. The run summary: step accuracy and pairwise accuracy on the held-out training problems.
    held_out: dict = {}
    if trainer.accelerator.is_main_process:
        write_json_atomic(out / SCORER_CONFIG_FILE, scorer_config)
        if held:
            scorer = ProcessScorer(str(out), dtype="bfloat16" if training_args.bf16 else "float32")
            held_out = step_accuracy(scorer, held)
            pairs = held_pairs
            if script_args.logprob_prior:  # w fit where the scorer's scores are out of sample
                scorer.logprob_weight = scorer_config["logprob_weight"] = fit_logprob_prior(scorer, pairs)
                write_json_atomic(out / SCORER_CONFIG_FILE, scorer_config)
            keys = list({r["key"]: r for pair in pairs for r in pair}.values())
            scores = {r["key"]: s for r, (s, _) in zip(keys, scorer.score_records(keys))}
            held_out["pairs"] = len(pairs)
            held_out["pairwise_accuracy"] = share_ranked_right(pairs, scores) if pairs else None
    summary = write_run_summary(
        trainer,
        out,
        "process_scorer",
        {
            "model": start_from,
            "model_path": model_path,
            "resumed_from": resume,
            "global_step": trainer.state.global_step,
            "data": counts,
            "data_provenance": provenance,
            "held_out": held_out,
            "held_out_pairwise_accuracy": held_out.get("pairwise_accuracy"),  # with the prior when it is on
            "logprob_weight": scorer_config.get("logprob_weight", 0.0),
            "train_runtime_s": round(result.metrics.get("train_runtime", wall), 3),
            "train_loss": result.metrics.get("train_loss"),
        },
        script_args=script_args,
        training_args=training_args,
        model_args=model_args,
    )
    if trainer.accelerator.is_main_process:
        logger.info("saved %s (%d answers, held out: %s, %.1f s)", out, len(train_records), held_out, wall)
    return summary


def cli(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` (default: the command line) and run :func:`main`; bad input exits with a message."""
    return run_entry_point(main, CONFIG_CLASSES, argv)


if __name__ == "__main__":
    cli()
