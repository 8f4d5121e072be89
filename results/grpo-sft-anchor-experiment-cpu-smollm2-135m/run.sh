#!/bin/bash
set -e
cd /work/main
# the eighth proof's data (checked identical): .venv/bin/python data/prepare.py --config configs/data/cpu-proof.yaml --output_dir runs/exp-kl3/data
date
ANCHOR_WEIGHT=1.0 ANCHOR_ROWS=2 /usr/bin/time -v .venv/bin/python results/grpo-sft-anchor-experiment-cpu-smollm2-135m/anchor.py --use_cpu true --config configs/rl/smollm2-135m.yaml --model_name_or_path runs/proof-v12/sft --dataset_path runs/exp-kl3/data --output_dir runs/exp-anchor/rl --reward_funcs correctness budget_cutoff soft_overlong format mode_compliance answer_length --reward_weights 1.0 1.0 3.0 0.25 0.5 0.25 --soft_punish_cache_ratio 0.15 --max_steps 15 --per_device_train_batch_size 4 --gradient_accumulation_steps 12 --num_generations 8 --max_completion_length 224 --temperature 0.8 --learning_rate 1e-05 --warmup_steps 1 --save_steps 3 --save_total_limit 2 --report_to none > runs/exp-anchor/rl.log 2>&1
date
.venv/bin/python eval/evaluate.py --config configs/eval/default.yaml --model runs/exp-anchor/rl --output runs/exp-anchor/eval --tasks chain --limit 400 --budgets 32,64,128 --methods budget_prompt --max_new_tokens 224 --batch_size 64 > runs/exp-anchor/eval.log 2>&1
date
echo DONE
