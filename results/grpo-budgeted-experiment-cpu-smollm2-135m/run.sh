#!/bin/bash
# Experiment: 20 more GRPO steps on the fourth proof's SFT+GRPO checkpoint, on budgeted prompts
# (configs/data/cpu-proof-budgeted.yaml) with the over-budget penalty doubled (soft_overlong weight 2).
set -e
# Needs the fourth proof's run folder runs/proof-v4 (python scripts/pipeline.py --profile cpu-proof --run-dir runs/proof-v4)
# and the data: python data/prepare.py --config configs/data/cpu-proof-budgeted.yaml --output_dir runs/exp-budgeted/data
cd "$(dirname "$0")/../.."   # the repository root
source .venv/bin/activate   # make setup
R=runs/exp-budgeted
[ -f $R/rl/config.json ] || accelerate launch --num_processes 1 --cpu train/rl.py --config configs/rl/smollm2-135m.yaml \
  --model_name_or_path runs/proof-v4/rl --dataset_path $R/data --output_dir $R/rl \
  --reward_funcs correctness budget_cutoff soft_overlong format mode_compliance answer_length \
  --reward_weights 1.0 1.0 2.0 0.25 0.5 0.25 --soft_punish_cache_ratio 0.05 --max_steps 20 \
  --per_device_train_batch_size 8 --gradient_accumulation_steps 6 --num_generations 8 \
  --max_completion_length 224 --temperature 0.8 --learning_rate 1e-05 --warmup_steps 1 \
  --save_steps 5 --save_total_limit 2 --report_to none > $R/rl.log 2>&1
python eval/evaluate.py --config configs/eval/default.yaml --model $R/rl --output $R/eval/rl \
  --tasks chain gsm8k --task_limits 400 100 --budgets off,32,64,128,none \
  --methods no_think budget_prompt think --max_new_tokens 224 --batch_size 64 > $R/eval.log 2>&1
echo done
