#!/bin/bash
# Experiment: a second SFT pass from the fourth proof's SFT model (lr 1e-4, a fresh cosine schedule, the
# proof's micro-batches), over its budgeted rows only (budgeted-rows/) or over all of its rows (all-rows/),
# each evaluated as the proof evaluates its SFT model (the same 200 held-out chain problems and seeds).
set -e
cd "$(dirname "$0")/../.."   # the repository root
source .venv/bin/activate   # make setup
# Needs the fourth proof's run folder: python scripts/pipeline.py --profile cpu-proof --run-dir runs/proof-v4
E=results/sft-second-pass-experiment-cpu-smollm2-135m
python data/prepare.py --config configs/data/cpu-proof.yaml --output_dir runs/exp-sft3/data --model_name_or_path smollm2-135m
mkdir -p runs/exp-sft2 && cp -r runs/exp-sft3/data runs/exp-sft2/
python -c "
from datasets import load_from_disk
rows = load_from_disk('runs/exp-sft3/data/sft/train').filter(lambda r: r['budget'] is not None)
import shutil; shutil.rmtree('runs/exp-sft2/data/sft/train'); rows.save_to_disk('runs/exp-sft2/data/sft/train')"
for arm in exp-sft2:budgeted-rows exp-sft3:all-rows; do
  R=runs/${arm%%:*} OUT=$E/${arm##*:}
  [ -f $R/sft/model.safetensors ] || accelerate launch --num_processes 1 --cpu train/sft.py \
    --config configs/sft/smollm2-135m.yaml --model_name_or_path runs/proof-v4/sft --dataset_path $R/data \
    --output_dir $R/sft --num_train_epochs 1 --per_device_train_batch_size 8 --gradient_accumulation_steps 2 \
    --learning_rate 1e-4 --warmup_steps 0.03 --max_length 384 --save_steps 25 --save_total_limit 2 \
    --report_to none --logging_steps 5
  python eval/evaluate.py --config configs/eval/default.yaml --model $R/sft --output $R/eval/sft --tasks chain \
    --task_limits 200 --budgets off,32,64,128,none --methods no_think budget_prompt think --max_new_tokens 224 \
    --batch_size 64
  python scripts/proof_targets.py $R --model sft --baseline runs/proof-v4 --output $OUT/targets
done
