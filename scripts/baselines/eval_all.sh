#!/usr/bin/env bash
# Robust evaluation of every finished run of run_all.sh with `nuat eval` (the evaluation issue's
# command): clean, PGD-100 and GAMA-PGD-100 on the first N test images and AutoAttack on the first
# AA_N, of the reported checkpoint of each run (best-ema.safetensors for weight-averaged methods,
# else best.safetensors). Results go to <run>/eval/<checkpoint>/eval.json, which table.py reads.
# A finished evaluation is skipped; a stopped one resumes (nuat eval keeps a per-example state).
# Without `nuat eval`, table.py falls back to the PGD-100 check `nuat train` ran at its end.
#
# Usage: scripts/baselines/eval_all.sh [RUN_DIRS...]
#   env: DATA (default ../shared/data), NUAT (default nuat), RUNS (default runs/baselines),
#        N (default 1000), AA_N (default 600), ATTACKS (default clean,pgd-100,gama-pgd-100,aa@$AA_N),
#        EVAL_ARGS (more nuat eval arguments, e.g. "--gama-reference clean": the GAMA setting of the
#        evaluations in results/baselines/table.md, made before commit 06f38b8 changed the default)
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
NUAT=${NUAT:-nuat}
RUNS=${RUNS:-runs/baselines}
N=${N:-1000}
AA_N=${AA_N:-600}
ATTACKS=${ATTACKS:-clean,pgd-100,gama-pgd-100,aa@$AA_N}
if ! $NUAT eval --help > /dev/null 2>&1; then
  echo "no 'nuat eval' here: table.py will use the PGD-100 numbers of nuat train's final check" >&2
  exit 0
fi
dirs=("$@")
if [[ ${#dirs[@]} -eq 0 ]]; then
  for d in "$RUNS"/*/; do dirs+=("${d%/}"); done
fi
for run in "${dirs[@]}"; do
  [[ -f "$run/summary.json" ]] || { echo "skip $run: not finished"; continue; }
  if [[ -f "$run/best-ema.safetensors" ]]; then name=best-ema; else name=best; fi
  out="$run/eval/$name"
  [[ -f "$out/eval.json" ]] && { echo "skip $run: $out/eval.json exists"; continue; }
  # shellcheck disable=SC2086
  $NUAT eval "$run/$name.safetensors" --n "$N" --attacks "$ATTACKS" --data-dir "$DATA" --out "$out" \
    --no-progress ${EVAL_ARGS:-} > "$run/eval-$name.log" 2>&1 || { echo "FAILED $run: see $run/eval-$name.log"; continue; }
  echo "done $run ($name)"
done
