#!/usr/bin/env bash
# nuat sanity (the gradient-masking checks) on GAT's seed-check runs: seed 2, whose AutoAttack
# (43.8%) lies 23 points under its PGD-100 (66.8%) in results/baselines/seed_check.md, and seed 0,
# the same recipe without that gap, as the control. Reports go to results/baselines/sanity/
# gat-s<seed>/best (sanity.md, sanity.json, loss_surface.png), the command's output to
# gat-s<seed>/sanity.log. The two run side by side, one thread each (a few minutes on this
# project's 2-core CPU). Exit code 0 whatever the checks say: a FLAG is a result here.
#
# Usage: scripts/baselines/sanity_gat_seeds.sh
#   env: DATA (default ../shared/data), NUAT (default nuat), N (default 500 test images)
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
NUAT=${NUAT:-nuat}
N=${N:-500}
export OMP_NUM_THREADS=1
declare -A RUN=([0]=runs/baselines/gat [2]=runs/baselines-seeds/s2/gat)
for seed in 0 2; do
  [[ -f ${RUN[$seed]}/best.safetensors ]] || {
    echo "sanity_gat_seeds.sh: error: no ${RUN[$seed]}/best.safetensors; run run_all.sh and seed_check.sh first" >&2
    exit 2
  }
done
for seed in 0 2; do
  mkdir -p "results/baselines/sanity/gat-s$seed"
  $NUAT sanity "${RUN[$seed]}" --data-dir "$DATA" --n "$N" --seed 0 --out "results/baselines/sanity/gat-s$seed" \
    --no-progress > "results/baselines/sanity/gat-s$seed/sanity.log" 2>&1 &
done
status=0
for job in $(jobs -p); do wait "$job" || { rc=$?; [[ $rc -eq 4 ]] || status=$rc; }; done
for seed in 0 2; do tail -n 1 "results/baselines/sanity/gat-s$seed/sanity.log"; done
exit $status
