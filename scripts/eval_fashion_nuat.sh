#!/usr/bin/env bash
# The evaluation issue's "must show": nuat eval and nuat sanity of the Fashion-MNIST NuAT model of
# the foundation issue (runs/fashion-mnist-nuat, small-cnn, eps 0.1, 8 epochs, seed 0), and
# nuat sanity and a short nuat eval of an undefended model trained the same way with plain
# cross-entropy (method erm, runs/fashion-mnist-erm, trained here if absent).
#
#   nuat eval:   clean, FGSM, PGD-7/20/100/500 (one run, step eps/10, random start) and
#                GAMA-PGD-100 on all 10,000 test images; AutoAttack standard and v1 on the first
#                1,000 (about 150 s per 500 images for the standard version on an idle 2-core CPU);
#                then PGD-7/20/50/100/500 with the published step eps/4.
#   nuat sanity: the gradient-masking checks on the first 1,000 test images.
#
# nuat eval resumes where it stopped (a finished one only rewrites its table); nuat sanity reruns
# (a few minutes each). Wall time on a busy 2-core CPU: about 75 minutes.
# Usage: scripts/eval_fashion_nuat.sh
#   env: DATA (default ../shared/data), NUAT (default .venv/bin/nuat if present, else nuat)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
NUAT=${NUAT:-$( [[ -x .venv/bin/nuat ]] && echo .venv/bin/nuat || echo nuat )}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=results/eval
RUN=runs/fashion-mnist-nuat
ERM=runs/fashion-mnist-erm
[[ -f $RUN/best.safetensors ]] || { echo "no $RUN/best.safetensors: train it first (see README.md)" >&2; exit 1; }

# --gama-reference clean: the GAMA setting these committed results were measured with (the default
# became the random start, as published, in commit 06f38b8)
$NUAT eval "$RUN" --data-dir "$DATA" --eps 0.1 --batch-size 500 --seed 0 --gama-reference clean \
  --attacks clean,fgsm,pgd-7,pgd-20,pgd-100,pgd-500,gama-pgd-100,aa@1000,aa-v1@1000 \
  --out "$OUT/fashion-mnist-nuat" --no-progress

# the published PGD protocol: step eps/4 (2/255 at eps 8/255), read out after 7/20/50/100/500 steps
$NUAT eval "$RUN" --data-dir "$DATA" --eps 0.1 --batch-size 500 --seed 0 --pgd-step eps/4 \
  --attacks clean,pgd-7,pgd-20,pgd-50,pgd-100,pgd-500 \
  --out "$OUT/fashion-mnist-nuat-pgd-step-eps4" --no-progress

$NUAT sanity "$RUN/best.safetensors" --data-dir "$DATA" --n 1000 --seed 0 \
  --out "$OUT/fashion-mnist-nuat/sanity" --no-progress || [[ $? -eq 4 ]]  # 4: a check flagged; report written

# the undefended model: same data, model, schedule and seed, plain cross-entropy training
if [[ ! -f $ERM/last.safetensors ]]; then
  $NUAT train --dataset fashion-mnist --model small-cnn --method erm --eps 0.1 --epochs 8 --batch-size 128 \
    --lr 0.05 --lr-up 0.4 --lr-down 0.5 --seed 0 --data-dir "$DATA" --out "$ERM" --overwrite --no-progress
fi
# last.safetensors: the fully trained network (best.* is chosen by robust validation accuracy,
# which for an undefended model picks an early epoch)
$NUAT sanity "$ERM/last.safetensors" --data-dir "$DATA" --n 1000 --seed 0 \
  --out "$OUT/fashion-mnist-erm/sanity" --no-progress || [[ $? -eq 4 ]]
$NUAT eval "$ERM/last.safetensors" --data-dir "$DATA" --eps 0.1 --batch-size 500 --seed 0 --gama-reference clean \
  --attacks clean,fgsm,pgd-20,pgd-100,gama-pgd-100,aa@1000 --n 1000 \
  --out "$OUT/fashion-mnist-erm" --no-progress
