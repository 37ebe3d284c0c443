#!/usr/bin/env bash
# The streaming path's throughput on this CPU: `nuat bench --loader` on an ImageNet-layout stand-in
# (real CIFAR-10 photographs enlarged to 500 x 375 JPEGs by scripts/speed/imagenet_standin.py:
# ImageNet is not on these machines), batch 64, 1 and 2 decode threads, next to ERM's step on
# small-cnn at 224 x 224. Writes benchmarks/cpu/imagenet-standin-loader-b64.{json,md}.
#
# env: DATA (default ../shared/data), NUAT (default nuat), PYTHON (default python3), STANDIN (folder
# for the stand-in, default /tmp/nuat-imagenet-standin; written once), STEPS (10), TRIALS (5).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
NUAT=${NUAT:-nuat}
STANDIN=${STANDIN:-/tmp/nuat-imagenet-standin}
if [[ ! -d "$STANDIN/imagenet/train" ]]; then
  ${PYTHON:-python3} scripts/speed/imagenet_standin.py "$STANDIN" --per-class 200 --data-dir "$DATA"
fi
OMP_NUM_THREADS=1 $NUAT bench --methods erm --dataset imagenet --data-dir "$STANDIN" --model small-cnn \
  --batch-size 64 --steps "${STEPS:-10}" --trials "${TRIALS:-5}" --warmup 1 --threads 1 --loader \
  --decode-threads 2 --title "nuat bench --loader: CPU, ImageNet stand-in (500 x 375 JPEGs), batch 64" \
  --note "stand-in: 2,000 real CIFAR-10 training photographs enlarged to 500 x 375 JPEGs (quality 90) by scripts/speed/imagenet_standin.py" \
  --note "$(nproc) cores; the ERM row is small-cnn at 224 x 224 with torch threads 1, for scale only" \
  --out benchmarks/cpu/imagenet-standin-loader-b64 "$@"
