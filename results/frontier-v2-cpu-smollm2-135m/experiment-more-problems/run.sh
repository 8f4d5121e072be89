#!/bin/bash
# Experiment: the frontier run's scorer on twice the training problems (160 instead of 80; the first 80 are the
# frontier run's own answers, continued), everything else as configs/frontier/cpu.yaml; same held-out answers.
set -e
cd "$(dirname "$0")/../../.."   # the repository root
source .venv/bin/activate
R=runs/exp-scorer160
# mkdir -p $R/eval && cp -r runs/frontier-v2/scorer-data $R/scorer-data
# cp runs/frontier-v2/eval/results.json runs/frontier-v2/eval/samples.jsonl $R/eval/
/usr/bin/time -f "scorer_data %e s" python eval/evaluate.py --config configs/scorer/data-smollm2-135m.yaml --model "$PWD/runs/proof-v4/rl" \
  --split train --output $R/scorer-data --tasks chain --budgets off,32,64,128 --methods no_think budget_prompt \
  --limit 160 --samples 8 --max_new_tokens 224 --dtype bfloat16 --batch_size 64 --backend hf > $R/scorer_data.log 2>&1
/usr/bin/time -f "scorer %e s" accelerate launch --num_processes 1 --cpu --mixed_precision no train/scorer.py --config configs/scorer/smollm2-135m.yaml \
  --data_dirs $R/scorer-data --model_name_or_path runs/proof-v4/rl --output_dir $R/scorer \
  --max_length 256 --max_pairs_per_group 16 --train_top_layers 6 --num_train_epochs 1 \
  --per_device_train_batch_size 8 --learning_rate 3e-05 --warmup_steps 0.05 --bf16 true --eval_strategy no \
  --save_strategy no --report_to none --logging_steps 10 > $R/scorer.log 2>&1
/usr/bin/time -f "frontier %e s" python eval/frontier.py --eval_dirs $R/eval --scorer $R/scorer --samples_grid 1 2 4 8 16 \
  --scorer_dtype bfloat16 --scorer_batch_size 64 > $R/frontier.log 2>&1
python scripts/frontier_targets.py $R --output $R/targets/targets > $R/targets.log 2>&1
echo done
