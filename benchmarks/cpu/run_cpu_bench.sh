#!/usr/bin/env bash
# The committed CPU benchmark of issue 7: small-cnn on real MNIST, batch 128, ERM / NuAT / NuAT-WA /
# PGD-AT (10 steps) / TRADES (10 steps) in one `nuat bench` process, plus the nuclear-norm backends.
# Writes benchmarks/cpu/mnist-small-cnn-b128.{json,md,png}. The committed report was made on an idle
# machine with CLOCK=wall STEPS=5 TRIALS=60 (its command line is in the report).
#
# env: DATA (default ../shared/data), NUAT (default nuat), THREADS (default 1), CLOCK (default cpu:
# process CPU time, robust on a shared machine; use wall on an idle one), STEPS (10), TRIALS (30),
# NOTE (a line for the report).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
NUAT=${NUAT:-nuat}
$NUAT bench --methods erm,nuat,nuat-wa,pgd-at,trades --dataset mnist --model small-cnn --batch-size 128 \
  --steps "${STEPS:-10}" --trials "${TRIALS:-30}" --warmup 5 --threads "${THREADS:-1}" --clock "${CLOCK:-cpu}" \
  --nuclear --data-dir "$DATA" --title "nuat bench: CPU, small-cnn, MNIST, batch 128" \
  --note "${NOTE:-$(nproc) cores, shared with other jobs (load averages above)}" \
  --out benchmarks/cpu/mnist-small-cnn-b128 "$@"
