#!/usr/bin/env bash
# Seed check of the baselines table's outliers: train METHODS again with other seeds (same recipe as
# run_all.sh) into runs/baselines-seeds/<method>-s<seed>, evaluate them like eval_all.sh, and print
# one line per run (clean, PGD-100, GAMA-PGD-100, AutoAttack, images that only Square broke).
#
# Usage: scripts/baselines/seed_check.sh SEED [METHODS...]   (default methods: nuat-h nuat)
#   env: DATA (default ../shared/data), NUAT (default nuat), RUNS (default runs/baselines-seeds)
set -euo pipefail
cd "$(dirname "$0")/../.."
seed=${1:?usage: seed_check.sh SEED [METHODS...]}
shift
DATA=${DATA:-../shared/data}
NUAT=${NUAT:-nuat}
RUNS=${RUNS:-runs/baselines-seeds}
mkdir -p "$RUNS"
for m in ${*:-nuat-h nuat}; do
  out="$RUNS/$m-s$seed"
  if [[ ! -f "$out/summary.json" ]]; then
    $NUAT train --dataset fashion-mnist --model small-cnn --method "$m" --eps 0.1 --epochs 8 --batch-size 128 \
      --lr 0.05 --lr-up 0.4 --lr-down 0.6 --seed "$seed" --data-dir "$DATA" --out "$out" --overwrite --resume auto \
      --no-progress >> "$RUNS/$m-s$seed.log" 2>&1 || { echo "FAILED $m seed $seed: see $RUNS/$m-s$seed.log"; continue; }
  fi
  DATA=$DATA NUAT=$NUAT scripts/baselines/eval_all.sh "$out" > /dev/null
done
python3 - "$RUNS" <<'PY'
import glob, json, sys
for path in sorted(glob.glob(f"{sys.argv[1]}/*/eval/*/eval.json")):
    rows = {a["name"]: a for a in json.load(open(path))["attacks"]}
    aa = rows.get("aa", {})
    comps = {c["name"]: c["robust"] for c in aa.get("components", [])}
    square = comps.get("fab-t", 0) - comps.get("square", 0) if comps else "-"
    print(path.split("/")[-4], " ".join(f"{k} {100 * rows[k]['accuracy']:.1f}" for k in rows), f"square-only {square}")
PY
