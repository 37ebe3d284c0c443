#!/usr/bin/env bash
# Issue 5's comparison: every baseline and every NuAT variant trained the same way on real
# Fashion-MNIST (small-cnn, eps 0.1, 8 epochs, batch 128, lr 0.05, seed 0, one LR schedule for all:
# linear up to the peak at 40% of the run, linear down to 0 at its end), one run directory each
# under runs/baselines/<method>. Each method keeps its own published attack, loss, lambda and EMA
# settings; only the LR shape is shared (--lr-drops none: also for gat, whose own is a step LR).
# A finished run (summary.json present) is skipped; a stopped one (SIGTERM/SIGINT: state saved) is
# resumed where it stopped (nuat train --resume auto).
#
# Usage: scripts/baselines/run_all.sh [METHODS...]
#   env: DATA (default ../shared/data), NUAT (default nuat), RUNS (default runs/baselines),
#        SEED (default 0)
# Then: scripts/baselines/eval_all.sh and scripts/baselines/table.py (see docs/baselines.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
NUAT=${NUAT:-nuat}
RUNS=${RUNS:-runs/baselines}
SEED=${SEED:-0}
# single-step methods first (minutes each on one core), the 10-step ones last
METHODS=${*:-erm fgsm-at rfgsm-at fbf gat gat-wa nuat nuat-wa nuat2 nuat2-wa nuat-h nuat-wa-h \
  pgd-at pgd-at-wa trades trades-wa awp}
mkdir -p "$RUNS"
for m in $METHODS; do
  out="$RUNS/$m"
  if [[ -f "$out/summary.json" ]]; then
    echo "skip $m: $out/summary.json exists"
    continue
  fi
  start=$(date +%s%N)
  $NUAT train --dataset fashion-mnist --model small-cnn --method "$m" --eps 0.1 --epochs 8 --batch-size 128 \
    --lr 0.05 --lr-drops none --lr-up 0.4 --lr-down 0.6 --seed "$SEED" --data-dir "$DATA" --out "$out" \
    --overwrite --resume auto --no-progress >> "$RUNS/$m.log" 2>&1 || { echo "FAILED $m: see $RUNS/$m.log"; continue; }
  end=$(date +%s%N)
  echo "{\"process_seconds\": $(( (end - start) / 1000000 )).0e-3}" > "$out/process_time.json"
  echo "done $m: $(tail -n 2 "$RUNS/$m.log" | tr '\n' ' ')"
done
