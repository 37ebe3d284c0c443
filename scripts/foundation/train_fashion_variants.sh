#!/usr/bin/env bash
# The foundation issue's check: NuAT variants on real Fashion-MNIST (small-cnn, eps 0.1, 8 epochs,
# batch 128, seed 0), each timed as a whole process, then the side-by-side table
# (results/foundation/fashion-mnist-variants.md) from the run directories of every variant trained
# so far. Each process_time.json also keeps the 1-minute load average at the run's start.
# Usage: scripts/foundation/train_fashion_variants.sh [DATA_DIR] [METHODS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-../shared/data}; shift || true
ALL="nuat nuat-wa nuat2 nuat-h"
METHODS=${*:-$ALL}
NUAT=${NUAT:-.venv/bin/nuat}; PY=${PY:-.venv/bin/python}
for m in $METHODS; do
  load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo null)
  start=$(date +%s%N)
  $NUAT train --dataset fashion-mnist --model small-cnn --method "$m" --eps 0.1 --epochs 8 --batch-size 128 \
    --seed 0 --data-dir "$DATA" --out "runs/fashion-mnist-$m" --overwrite --no-progress
  end=$(date +%s%N)
  echo "{\"process_seconds\": $(( (end - start) / 1000000 )).0e-3, \"load_average_before\": $load}" \
    > "runs/fashion-mnist-$m/process_time.json"
done
# the table holds every variant trained so far (a run of one METHOD refreshes its row)
dirs=()
for m in $ALL; do [[ -f runs/fashion-mnist-$m/summary.json ]] && dirs+=("runs/fashion-mnist-$m"); done
mkdir -p results/foundation
$PY scripts/foundation/variants_table.py "${dirs[@]}" > results/foundation/fashion-mnist-variants.md
cat results/foundation/fashion-mnist-variants.md
