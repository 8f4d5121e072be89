#!/bin/bash
# A correct answer over budget worth less than a guess within it: the sixth proof's GRPO recipe (15 steps
# from its SFT model, its own data) with soft_overlong weighted 2 instead of 1, so that past the budget a
# correct answer earns 1 - 2 = -1 against 0 for a wrong answer within it; evaluated as the proof evaluates
# SFT+GRPO on chain, and paired against the proof's eval/rl.
set -e
cd "$(git rev-parse --show-toplevel)"
R=runs/exp-penalty
E=results/grpo-penalty-experiment-cpu-smollm2-135m
python train/rl.py --use_cpu true --config configs/rl/smollm2-135m.yaml --model_name_or_path runs/proof-v10/sft \
  --dataset_path runs/proof-v10/data --output_dir $R/rl --reward_funcs correctness budget_cutoff soft_overlong format \
  mode_compliance answer_length --reward_weights 1.0 1.0 2.0 0.25 0.5 0.25 --soft_punish_cache_ratio 0.05 \
  --max_steps 15 --per_device_train_batch_size 4 --gradient_accumulation_steps 12 --num_generations 8 \
  --max_completion_length 224 --temperature 0.8 --learning_rate 1e-05 --warmup_steps 1 --save_steps 3 \
  --save_total_limit 2 --report_to none
python eval/evaluate.py --config configs/eval/default.yaml --model $R/rl --output $R/eval --tasks chain \
  --task_limits 400 --budgets off,32,64,128,none --methods no_think budget_prompt think --max_new_tokens 224 --batch_size 64
python results/grpo-binding-budget-experiment-cpu-smollm2-135m/compare.py $R/eval/samples.jsonl \
  results/cpu-proof-v6-smollm2-135m/eval/rl/samples.jsonl $E "sixth proof"
