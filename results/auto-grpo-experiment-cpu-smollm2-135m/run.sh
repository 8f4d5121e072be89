#!/usr/bin/env bash
# Auto mode's decision in GRPO on a real model (AdaptThink's sampling, thinkbudget/decision.py): 10 GRPO
# steps from the fifth CPU proof's SFT+GRPO checkpoint on RL rows of which half are auto, then auto mode
# evaluated against always/never thinking on 200 held-out chain problems, before and after.
# From the repository root, with the fifth proof's run folder (runs/proof-v9) present:
#   bash results/auto-grpo-experiment-cpu-smollm2-135m/run.sh
set -euo pipefail
RUN=runs/auto-grpo
OUT=results/auto-grpo-experiment-cpu-smollm2-135m
BIN=${BIN:-.venv/bin}
mkdir -p $RUN
# 1. Where thinking pays, measured on the proof's SFT model (thinking off vs free thinking, per difficulty).
$BIN/python scripts/auto_decisions.py --eval_dir runs/proof-v9/eval/sft --output $RUN/auto_decisions.json
# 2. The proof's chain problems, half of the rows auto (budgeted in the think rows' proportion).
$BIN/python data/prepare.py --config configs/data/cpu-proof.yaml --output_dir $RUN/data --overwrite_output_dir true \
  --tasks chain --task_train_problems 1350 --think_budget_ratio 0.3 --think_free_ratio 0.1 --no_think_ratio 0.1 \
  --auto_ratio 0.5 --auto_decisions $RUN/auto_decisions.json
# 3. GRPO: the proof's recipe and rewards plus no_think_bonus at AdaptThink's delta (0.05), 10 steps.
$BIN/accelerate launch --num_processes 1 --cpu train/rl.py --config configs/rl/smollm2-135m.yaml \
  --model_name_or_path runs/proof-v9/rl --dataset_path $RUN/data --output_dir $RUN/rl --overwrite_output_dir true \
  --reward_funcs correctness budget_cutoff soft_overlong format mode_compliance answer_length no_think_bonus \
  --reward_weights 1.0 1.0 1.0 0.25 0.5 0.25 0.05 --soft_punish_cache_ratio 0.05 --max_steps 10 \
  --per_device_train_batch_size 4 --gradient_accumulation_steps 12 --num_generations 8 \
  --max_completion_length 224 --temperature 0.8 --learning_rate 1e-05 --warmup_steps 1 \
  --save_steps 5 --save_total_limit 1 --report_to none
$BIN/python eval/grpo_curves.py $RUN/rl --output $OUT/grpo
# 4. Auto mode against always / never thinking, same 200 held-out problems and seeds, before and after.
for model in proof-v9/rl auto-grpo/rl; do
  name=$([ $model = proof-v9/rl ] && echo before || echo after)
  $BIN/python eval/evaluate.py --config configs/eval/default.yaml --model runs/$model --output $RUN/eval/$name \
    --tasks chain --task_limits 200 --budgets off,32,128,none --methods no_think think auto auto_budget \
    --max_new_tokens 224 --batch_size 64
done
