#!/bin/bash
# Experiment: the CPU proof's GRPO stage with one more reward term, granularity (profile.yaml here), from
# the fourth proof's SFT checkpoint; every SFT+GRPO evaluation is paired with the fourth proof's.
set -e
cd "$(dirname "$0")/../.."   # the repository root
source .venv/bin/activate   # make setup
# Needs the fourth proof's run folder: python scripts/pipeline.py --profile cpu-proof --run-dir runs/proof-v4
R=runs/proof-v6 D=results/granularity-reward-experiment-cpu-smollm2-135m
# The fourth proof's finished stages that this experiment keeps: its SFT model (top-level files only;
# the SFT rows this commit writes are identical, checked below) and its evaluations of the SFT model.
mkdir -p $R/sft $R/eval
cp runs/proof-v4/.thinkbudget-run runs/proof-v4/pipeline.json $R/
cp -r runs/proof-v4/logs runs/proof-v4/demo $R/
cp -r runs/proof-v4/eval/base runs/proof-v4/eval/sft runs/proof-v4/eval/forcing $R/eval/
find runs/proof-v4/sft -maxdepth 1 -type f -exec cp {} $R/sft/ \;
# This commit's data stage: the same SFT rows, and RL rows with the target_lines column.
python data/prepare.py --config configs/data/cpu-proof.yaml --output_dir $R/data --model_name_or_path smollm2-135m
python -c "
from datasets import load_from_disk
for s in ('train', 'test'):
    assert load_from_disk('runs/proof-v4/data/sft/' + s).to_list() == load_from_disk('$R/data/sft/' + s).to_list(), s
print('SFT rows identical to the fourth proof')"
# GRPO with the granularity term, then every stage after it (evaluations, report, targets).
python scripts/pipeline.py --profile $D/profile.yaml --run-dir $R --force rl
python scripts/proof_targets.py $R --baseline runs/proof-v4 --time_limit_min 120 --memory_limit_gib 8 --output $D/targets
