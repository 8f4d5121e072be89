#!/bin/bash
# Experiment: the frontier run's scorer with the policy's log-probability as a prior (--logprob_prior true:
# score = head + w x mean log-probability, w fit on the training pairs, the head trained on the rest), on the
# frontier run's own scorer data and held-out answers (runs/frontier-v2); everything else as configs/frontier/cpu.yaml.
set -e
cd "$(dirname "$0")/../../.."   # the repository root
source .venv/bin/activate
R=runs/exp-scorer-prior
mkdir -p $R/eval
cp runs/frontier-v2/eval/results.json runs/frontier-v2/eval/samples.jsonl $R/eval/
/usr/bin/time -f "scorer %e s" accelerate launch --num_processes 1 --cpu --mixed_precision no train/scorer.py --config configs/scorer/smollm2-135m.yaml \
  --data_dirs runs/frontier-v2/scorer-data --model_name_or_path runs/proof-v4/rl --output_dir $R/scorer \
  --max_length 256 --max_pairs_per_group 16 --train_top_layers 6 --num_train_epochs 1 \
  --per_device_train_batch_size 8 --learning_rate 3e-05 --warmup_steps 0.05 --bf16 true --eval_strategy no \
  --save_strategy no --report_to none --logging_steps 10 --logprob_prior true > $R/scorer.log 2>&1
/usr/bin/time -f "frontier %e s" python eval/frontier.py --eval_dirs $R/eval --scorer $R/scorer --samples_grid 1 2 4 8 16 \
  --scorer_dtype bfloat16 --scorer_batch_size 64 > $R/frontier.log 2>&1
python scripts/frontier_targets.py $R --output $R/targets/targets > $R/targets.log 2>&1
echo done
