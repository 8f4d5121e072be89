#!/bin/bash
# GRPO on binding budgets: the proof's GRPO recipe (15 steps from the fifth proof's SFT model), trained on
# rows whose stated budget binds, half at budget 128; evaluated as the proof evaluates SFT+GRPO on chain.
set -e
cd "$(git rev-parse --show-toplevel)"
R=runs/exp-bind
python data/prepare.py --config configs/data/cpu-proof.yaml --output_dir $R/data --model_name_or_path smollm2-135m
python results/grpo-binding-budget-experiment-cpu-smollm2-135m/binding_rows.py $R/data $R/data-bind
python train/rl.py --use_cpu true --config configs/rl/smollm2-135m.yaml --model_name_or_path runs/proof-v9/sft \
  --dataset_path $R/data-bind --output_dir $R/rl --reward_funcs correctness budget_cutoff soft_overlong format \
  mode_compliance answer_length --reward_weights 1.0 1.0 1.0 0.25 0.5 0.25 --soft_punish_cache_ratio 0.05 \
  --max_steps 15 --per_device_train_batch_size 4 --gradient_accumulation_steps 12 --num_generations 8 \
  --max_completion_length 224 --temperature 0.8 --learning_rate 1e-05 --warmup_steps 1 --save_steps 3 \
  --save_total_limit 2 --report_to none
python eval/evaluate.py --config configs/eval/default.yaml --model $R/rl --output $R/eval --tasks chain \
  --task_limits 400 --budgets off,32,64,128,none --methods no_think budget_prompt think --max_new_tokens 224 --batch_size 64
