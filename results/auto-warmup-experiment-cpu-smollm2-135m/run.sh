#!/usr/bin/env bash
# Auto mode on a real model (issue #21): teach a 135M model to answer single chain steps without thinking,
# measure where thinking pays, SFT auto rows from that table, GRPO on the decision, evaluate auto mode
# against always / never thinking. Starts from the seventh CPU proof's SFT+GRPO checkpoint.
# From the repository root, with the proof's run folder (runs/proof-v11) present:
#   bash results/auto-warmup-experiment-cpu-smollm2-135m/run.sh [phase ...]   (phases: 1 2 3 4 6 7 5; all by default;
#   MODELS="sft2 rl rlfix" for phase 5's evaluations)
set -euo pipefail
RUN=${RUN:-runs/auto-warmup}
BIN=${BIN:-.venv/bin}
OUT=results/auto-warmup-experiment-cpu-smollm2-135m
START=${START:-runs/proof-v11/rl}
PHASES=${*:-1 2 3 4 6 7 5}
SFT="$BIN/accelerate launch --num_processes 1 --cpu train/sft.py --config configs/sft/smollm2-135m.yaml \
  --num_train_epochs 1 --per_device_train_batch_size 8 --gradient_accumulation_steps 2 \
  --warmup_steps 0.03 --max_length 384 --save_steps 50 --save_total_limit 1 --report_to none --logging_steps 5 \
  --overwrite_output_dir true"
# GRPO: the proof's rewards plus no_think_bonus at AdaptThink's delta (0.05); 48 completions (6 prompts x 8)
# a step. Each phase adds its model, output, steps and checkpoint interval.
GRPO="$BIN/accelerate launch --num_processes 1 --cpu train/rl.py --config configs/rl/smollm2-135m.yaml \
  --dataset_path $RUN/data2 --overwrite_output_dir true \
  --reward_funcs correctness budget_cutoff soft_overlong format mode_compliance answer_length no_think_bonus \
  --reward_weights 1.0 1.0 3.0 0.25 0.5 0.25 0.05 --soft_punish_cache_ratio 0.15 \
  --per_device_train_batch_size 4 --gradient_accumulation_steps 12 --num_generations 8 \
  --max_completion_length 224 --temperature 0.8 --learning_rate 1e-05 --warmup_steps 1 \
  --save_total_limit 1 --report_to none"
mkdir -p $RUN
for phase in $PHASES; do case $phase in
1)  # Direct answers: single steps (new family `step`) in every mode, with chain and GSM8K rows replayed so
    # that the proof's controls stay; no auto rows yet (where thinking pays is not known before this model).
    $BIN/python data/prepare.py --config configs/data/cpu-proof.yaml --output_dir $RUN/data1 --overwrite_output_dir true \
      --tasks step chain gsm8k --task_train_problems 1000 300 60 --rows_per_problem 2 \
      --think_budget_ratio 0.35 --think_free_ratio 0.3 --no_think_ratio 0.35
    $SFT --learning_rate 1e-4 --model_name_or_path $START --dataset_path $RUN/data1 --output_dir $RUN/sft1 ;;
2)  # Where thinking pays for this model: thinking off against free thinking, per difficulty bin. The margin
    # is GRPO's delta below (AdaptThink's 0.05, the accuracy a skipped trace may cost), so that SFT's auto
    # targets and GRPO's reward make the same decision (at 0.02 single steps would think: 94.0 against 98.5 %).
    $BIN/python eval/evaluate.py --config configs/eval/default.yaml --model $RUN/sft1 --output $RUN/eval/sft1 \
      --tasks step chain gsm8k --task_limits 200 200 200 --budgets off,none --methods no_think think \
      --max_new_tokens 224 --batch_size 64
    $BIN/python scripts/auto_decisions.py --eval_dir $RUN/eval/sft1 --output $RUN/auto_decisions.json \
      --edges 12,16,32,64,128 --margin 0.05 ;;
3)  # Auto rows from the measured table (budgeted in the think rows' proportion), every other mode replayed.
    # From the proof's model, not sft1, at half the rate: sft1's pass (1e-4, chains 22 % of rows) cost 10.5
    # points of free thinking on chains (step correctness 98.4 -> 96.6 %), so here chains are half the problems.
    $BIN/python data/prepare.py --config configs/data/cpu-proof.yaml --output_dir $RUN/data2 --overwrite_output_dir true \
      --tasks step chain gsm8k --task_train_problems 800 800 100 --rows_per_problem 2 \
      --think_budget_ratio 0.3 --think_free_ratio 0.15 --no_think_ratio 0.15 --auto_ratio 0.4 \
      --auto_decisions $RUN/auto_decisions.json
    $SFT --learning_rate 5e-5 --model_name_or_path $START --dataset_path $RUN/data2 --output_dir $RUN/sft2 ;;
4)  # GRPO on the decision: AdaptThink's sampling (half of each auto group forced to the empty block, half to
    # a trace, the decision token weighted by pi/0.5); 10 steps.
    $GRPO --model_name_or_path $RUN/sft2 --output_dir $RUN/rl --max_steps 10 --save_steps 5
    $BIN/python eval/grpo_curves.py $RUN/rl --output $OUT/grpo ;;
6)  # 20 more GRPO steps from the 10-step model (other prompts: seed 43): in auto mode without a budget the
    # 10-step model still writes chain traces of 52 thinking tokens where free thinking writes 89.
    $GRPO --model_name_or_path $RUN/rl --output_dir $RUN/rl30 --max_steps 20 --seed 43 --save_steps 5
    $BIN/python eval/grpo_curves.py $RUN/rl30 --output $OUT/grpo-steps-11-30 ;;
7)  # 30 GRPO steps from sft2 once budget_cutoff pays a right answer without thinking as it pays one within
    # the budget (phases 4 and 6 ran before that fix: P(think) on single steps rose from 0.02 to 0.92).
    $GRPO --model_name_or_path $RUN/sft2 --output_dir $RUN/rlfix --max_steps 30 --save_steps 10
    $BIN/python eval/grpo_curves.py $RUN/rlfix --output $OUT/grpo-fixed ;;
5)  # Auto against always / never thinking on half single steps, half chains (mix:step+chain) and on GSM8K,
    # and the proof's explicit conditions on its own 400 chain problems (the regression check against
    # runs/proof-v11/eval/rl: same problems and seeds).
    for model in ${MODELS:-sft2 rl rlfix}; do
      $BIN/python eval/evaluate.py --config configs/eval/default.yaml --model $RUN/$model --output $RUN/eval/$model \
        --tasks mix:step+chain gsm8k --task_limits 400 200 --budgets off,32,64,128,none \
        --methods no_think think auto auto_budget ${MIX_METHODS:-} --max_new_tokens 224 --batch_size 64
      $BIN/python eval/evaluate.py --config configs/eval/default.yaml --model $RUN/$model --output $RUN/eval/$model-chain \
        --tasks chain --task_limits 400 --budgets off,32,64,128,none --methods no_think budget_prompt think \
        --max_new_tokens 224 --batch_size 64
    done ;;
esac; done
