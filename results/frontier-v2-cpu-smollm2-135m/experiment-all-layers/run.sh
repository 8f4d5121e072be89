#!/bin/bash
# Experiment: the frontier run's scorer with all 30 layers trained (the recipe trains the top 6), same data,
# same held-out answers; everything else as configs/frontier/cpu.yaml.
set -e
cd "$(dirname "$0")/../../.."   # the repository root
source .venv/bin/activate
R=runs/exp-scorer30
# the frontier run's held-out answers (runs/frontier-v2: python scripts/frontier_run.py --recipe configs/frontier/cpu.yaml
# --checkpoint runs/proof-v4/rl --run-dir runs/frontier-v2), copied so that its own frontier files stay as they are
mkdir -p $R/eval && cp runs/frontier-v2/eval/results.json runs/frontier-v2/eval/samples.jsonl $R/eval/
/usr/bin/time -f "scorer %e s" accelerate launch --num_processes 1 --cpu --mixed_precision no train/scorer.py --config configs/scorer/smollm2-135m.yaml \
  --data_dirs runs/frontier-v2/scorer-data --model_name_or_path runs/proof-v4/rl --output_dir $R/scorer \
  --max_length 256 --max_pairs_per_group 16 --train_top_layers 30 --num_train_epochs 1 \
  --per_device_train_batch_size 8 --learning_rate 3e-05 --warmup_steps 0.05 --bf16 true --eval_strategy no \
  --save_strategy no --report_to none --logging_steps 10 > $R/scorer.log 2>&1
/usr/bin/time -f "frontier %e s" python eval/frontier.py --eval_dirs $R/eval --scorer $R/scorer --samples_grid 1 2 4 8 16 \
  --scorer_dtype bfloat16 --scorer_batch_size 64 > $R/frontier.log 2>&1
python scripts/frontier_targets.py $R --output $R/targets/targets > $R/targets.log 2>&1
echo done
