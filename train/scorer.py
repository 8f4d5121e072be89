"""Train the best-of-N scorer on the policy's own answers: which of two answers to a problem is right?

The data is an evaluation of *training* problems (``eval/evaluate.py --split train --samples N``, recipes
``configs/scorer/data-*.yaml``): N answers per problem at several budgets and with thinking off, each
labelled by the project's one scorer. Pairs of a correct and a wrong answer to the same problem (under
the same budget condition by default) train a one-logit sequence-classification head with TRL's
``RewardTrainer`` (Bradley-Terry loss). The scorer reads the question and the whole completion, never
the gold answer. Why pairs and not correct/incorrect labels: see thinkbudget/scorer.py.

    python eval/evaluate.py --config configs/scorer/data-smoke.yaml --output runs/scorer-data/smoke
    accelerate launch --num_processes 1 --cpu train/scorer.py --config configs/scorer/smoke.yaml
    accelerate launch train/scorer.py --config configs/scorer/smollm2-135m.yaml --data_dirs runs/scorer-data/rl

CLI flags override the YAML (``--max_steps 3 --bf16 false``). Output (``output_dir``): checkpoint-N
folders, the final scorer with its tokenizer (loads with ``AutoModelForSequenceClassification``),
``scorer.json`` (how its input is built), and ``run_summary.json`` (data counts and provenance, pairwise
accuracy on held-out training problems, loss, config, commit, device). Use it with
``eval/evaluate.py --best_of_n_scorer DIR`` or ``eval/frontier.py --scorer DIR``.
"""

from __future__ import annotations

import logging
import time

from thinkbudget.run_folders import (
    run_entry_point,
    start_training_run,
    write_json_atomic,
    write_run_summary,
)
from thinkbudget.scorer import (
    CONFIG_CLASSES,
    SCORER_CONFIG_FILE,
    SCORER_PREFIX,
    ScorerModelConfig,
    ScorerScriptArguments,
    ThinkRewardConfig,
    TrainedScorer,
    build_pairs,
    data_summary,
    fit_logprob_weight,
    held_out_problem,
    pairs_dataset,
    record_logprob,
    scorer_data_and_start,
    scorer_model,
    share_ranked_right,
    slip_pairs,
)

logger = logging.getLogger("train.scorer")


def main(
    script_args: ScorerScriptArguments, training_args: ThinkRewardConfig, model_args: ScorerModelConfig
) -> dict:
    """Train, save the final scorer in ``training_args.output_dir`` and return the run summary."""
    # 1. The data folders and the run folder are checked before anything loads.
    records, provenance, start_from = scorer_data_and_start(
        script_args.data_dirs, model_args.model_name_or_path
    )
    model_path, resume, out = start_training_run(start_from, training_args)

    from thinkbudget.models import load_tokenizer, save_final_model

    # 2. Pairs: (correct, wrong) answers to one problem; a share of problems is kept out to measure
    #    pairwise accuracy. Only token ids of question + completion go into the datasets.
    frac, scope = script_args.scorer_eval_fraction, script_args.pair_scope
    held = [r for r in records if held_out_problem(r, frac)]
    kept = [r for r in records if not held_out_problem(r, frac)]

    def pairs(rs: list[dict]) -> list:
        return build_pairs(
            rs, scope=scope, max_pairs_per_group=script_args.max_pairs_per_group, seed=script_args.pair_seed
        )

    train_pairs, eval_pairs = pairs(kept), pairs(held)
    counts = {"train": data_summary(kept, scope), "held_out": data_summary(held, scope)}
    counts["train"]["pairs"], counts["held_out"]["pairs"] = len(train_pairs), len(eval_pairs)
    if script_args.slip_pairs_per_right:  # training problems only: held-out pairs stay real answers
        slips = slip_pairs(kept, script_args.slip_pairs_per_right, seed=script_args.pair_seed)
        counts["train"]["slip_pairs"] = len(slips)
        train_pairs = train_pairs + slips
    logger.info("scorer data: %s", counts)
    if not train_pairs:
        raise SystemExit(
            f"no training pair: no problem has both a correct and a wrong answer ({counts['train']}); sample "
            "more answers per problem, more problems, or from a checkpoint that solves some of them"
        )
    # The log-probability prior: w fit on the training pairs first, the head then learns the rest.
    weight = 0.0
    if script_args.logprob_prior:
        try:
            weight = fit_logprob_weight(train_pairs)
        except ValueError as e:
            raise SystemExit(f"logprob_prior: {e}") from None
        logger.info("log-probability prior: w = %.3f (fit on %d training pairs)", weight, len(train_pairs))
    tokenizer = load_tokenizer(model_path, trust_remote_code=training_args.trust_remote_code)
    train_dataset = pairs_dataset(train_pairs, tokenizer, training_args.max_length, weight)
    eval_dataset = (
        pairs_dataset(eval_pairs, tokenizer, training_args.max_length, weight) if eval_pairs else None
    )

    # 3. The model: the checkpoint's weights under a fresh one-logit head (think tokens kept single).
    from transformers import AutoModelForSequenceClassification

    model = scorer_model(
        AutoModelForSequenceClassification, model_path, tokenizer, model_args, training_args, num_labels=1
    )

    # 4. Train with TRL's RewardTrainer (pairs already tokenised, so TRL only pads and batches them).
    from trl import RewardTrainer

    trainer = RewardTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if training_args.eval_strategy != "no" else None,
        processing_class=tokenizer,
    )
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - t0
    held_out = trainer.evaluate(eval_dataset) if eval_dataset is not None else {}

    # 5. Save a scorer that plain transformers loads, with how its input is built.
    save_final_model(trainer, tokenizer, out, lora=False)
    scorer_config = {
        "kind": "pairwise",  # thinkbudget.scorer.load_scorer reads it (a process scorer says "process")
        "max_length": training_args.max_length,
        "input": SCORER_PREFIX + "<pre-filled tokens + completion>",
        "pair_scope": scope,
        "logprob_weight": weight,  # score = head + logprob_weight * mean_logprob (0: the head alone)
        "slip_pairs_per_right": script_args.slip_pairs_per_right,  # made-up wrong copies in training
        "trained_on": [p["dir"] for p in provenance],
    }

    # 6. The run summary a person (or the frontier) reads. TRL's accuracy compares the head alone; with
    #    the prior, the held-out pairs are scored again as the frontier scores them (head + w * lp).
    held_out_accuracy = held_out.get("eval_accuracy")
    prior_figures = {}
    if trainer.accelerator.is_main_process:
        write_json_atomic(out / SCORER_CONFIG_FILE, scorer_config)
        if weight and eval_pairs:
            held_records = list({r["key"]: r for pair in eval_pairs for r in pair}.values())
            scored = TrainedScorer(str(out)).score_records(held_records)
            scores = {r["key"]: s for r, (s, _) in zip(held_records, scored)}
            held_out_accuracy = share_ranked_right(eval_pairs, scores)
            prior_figures = {
                "held_out_head_pairwise_accuracy": held_out.get("eval_accuracy"),
                "held_out_logprob_pairwise_accuracy": share_ranked_right(
                    eval_pairs, {r["key"]: record_logprob(r) for r in held_records}
                ),
            }
    summary = write_run_summary(
        trainer,
        out,
        "scorer",
        {
            "model": start_from,
            "model_path": model_path,
            "resumed_from": resume,
            "global_step": trainer.state.global_step,
            "data": counts,
            "data_provenance": provenance,
            "logprob_weight": weight,
            "held_out_pairwise_accuracy": held_out_accuracy,
            **prior_figures,
            "held_out_loss": held_out.get("eval_loss"),
            "train_runtime_s": round(result.metrics.get("train_runtime", wall), 3),
            "train_loss": result.metrics.get("train_loss"),
        },
        script_args=script_args,
        training_args=training_args,
        model_args=model_args,
    )
    if trainer.accelerator.is_main_process:
        logger.info(
            "saved %s (%d pairs, held-out pairwise accuracy %s, %.1f s)",
            out,
            len(train_pairs),
            summary["held_out_pairwise_accuracy"],
            wall,
        )
    return summary


def cli(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` (default: the command line) and run :func:`main`; bad input exits with a message."""
    return run_entry_point(main, CONFIG_CLASSES, argv)


if __name__ == "__main__":
    cli()
