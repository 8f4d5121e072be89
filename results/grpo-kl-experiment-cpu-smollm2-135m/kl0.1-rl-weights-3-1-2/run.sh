#!/bin/bash
set -e
cd /work/main
date
.venv/bin/python scripts/pipeline.py --profile cpu-proof --run-dir runs/proof-v12 --force data --only data
date
.venv/bin/python scripts/pipeline.py --profile cpu-proof --run-dir runs/proof-v12 --force rl
date
echo DONE
