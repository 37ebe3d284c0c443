#!/usr/bin/env bash
# GPU measurements of issue 7 (Speed), for a session that has a GPU: ResNet-18 on cifar10-jpeg,
# batch 512, the fast path (bf16 autocast, channels_last, torch.compile, nuclear-norm group 64)
# against the faithful float32 step, for speed (nuat bench) and robust accuracy (short nuat train
# runs + nuat eval). Each stage fits one device command (< 10 min on an H100):
#
#   benchmarks/gpu/run_gpu_bench.sh env       # GPU, torch, decode cifar10-jpeg into the cache
#   benchmarks/gpu/run_gpu_bench.sh tests     # the nuclear-norm backends' value and gradient tests,
#                                             # on the CPU and the GPU (needs pytest importable)
#   benchmarks/gpu/run_gpu_bench.sh bench     # ERM, NuAT, PGD-AT x {fp32, fast}, interleaved
#   benchmarks/gpu/run_gpu_bench.sh flags     # the same methods under each eager flag alone
#   benchmarks/gpu/run_gpu_bench.sh accuracy  # NuAT fp32 vs --fast: E epochs each + PGD-20
#   benchmarks/gpu/run_gpu_bench.sh wa        # NuAT-WA --fast, WA_EPOCHS epochs (default 100),
#                                             # then clean, PGD-100 and AutoAttack on N images
#   benchmarks/gpu/run_gpu_bench.sh lease     # env bench flags accuracy in one command, each under a
#                                             # time limit (T_ENV, T_TESTS, T_BENCH, T_FLAGS, T_ACC,
#                                             # T_WA seconds; STAGES picks some, in order), results
#                                             # packed into $OUT/gpu-results.tar.gz after each
#
# env: DATA (default: $NUAT_DATA, else ../shared/data, else /work/shared/data), NUAT (default:
# nuat), PYTHON (python3), RESULTS (default: $OUT if set -- the device tool's output folder -- else
# benchmarks/gpu), BATCH (512), STEPS (10), TRIALS (5), EPOCHS (accuracy stage: 10), N (eval
# images: 1000), WARMUP (bench warm-up iterations: 3), CHECKS (bench stage's extra parts: default
# "--nuclear --loader --check-syncs"; empty: none), METHODS (erm,nuat,pgd-at), NUAT_COMMIT (the
# commit, where the tree is no git checkout); for a dry run elsewhere: DEVICE (cuda), DATASET
# (cifar10-jpeg), MODEL (resnet18), BENCH_VARIANTS (fp32,fast), PROFILE (bench stage: iterations per method under torch.profiler;
# unset: none), FLAG_VARIANTS, TRAIN_ARGS (extra nuat train arguments, e.g. "--train-limit 2000"),
# ACC_VARIANTS ("fp32 fast"; also fp32-whole, bf16, compile, fast-ro = --fast --compile-mode
# reduce-overhead), WA_FLAGS (wa stage's speed flags; default --fast; "--amp bf16
# --channels-last --nuclear-group-size 64" skips the ~65 s of compiling).
# Results: $RESULTS/<stage>.json/.md (nuat bench), $RESULTS/accuracy.md, logs beside them.
# Commit benchmarks/gpu/*.md and *.json afterwards and fill in the GPU section of docs/speed.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
stage=${1:-}
NUAT=${NUAT:-nuat}
if [[ -z "${DATA:-}" ]]; then
  for d in "${NUAT_DATA:-}" ../shared/data /work/shared/data shared/data; do
    [[ -n "$d" && -d "$d" ]] && { DATA=$d; break; }
  done
fi
DATA=${DATA:?set DATA to the folder holding cifar10-jpeg/}
RESULTS=${RESULTS:-${OUT:-benchmarks/gpu}}
BATCH=${BATCH:-512}
STEPS=${STEPS:-10}
TRIALS=${TRIALS:-5}
EPOCHS=${EPOCHS:-10}
N=${N:-1000}
METHODS=${METHODS:-erm,nuat,pgd-at}
PYTHON=${PYTHON:-python3}
BENCH_VARIANTS=${BENCH_VARIANTS:-fp32,fast}
FLAG_VARIANTS=${FLAG_VARIANTS:-fp32,bf16,channels-last,group64,bf16+channels-last+group64}
DEVICE=${DEVICE:-cuda}
DATASET=${DATASET:-cifar10-jpeg}
MODEL=${MODEL:-resnet18}
TRAIN_ARGS=${TRAIN_ARGS:-}
mkdir -p "$RESULTS"
common=(--dataset "$DATASET" --model "$MODEL" --batch-size "$BATCH" --data-dir "$DATA" --device "$DEVICE"
        --steps "$STEPS" --trials "$TRIALS" --warmup "${WARMUP:-3}")

case "$stage" in
  env)
    nvidia-smi || true
    $PYTHON -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available() and \
torch.cuda.get_device_name(0), torch.cuda.is_available() and torch.cuda.is_bf16_supported())"
    # first use decodes cifar10-jpeg once into the decode cache (NUAT_CACHE)
    $PYTHON -c "import sys, time; t = time.time(); from nuat.data import load_dataset; \
[load_dataset('$DATASET', s, data_dir='$DATA') for s in ('train', 'test')]; print(f'decoded in {time.time() - t:.1f} s')"
    ;;
  tests)
    $PYTHON -m pytest -p no:cacheprovider -o addopts="--import-mode=importlib" -q -rs tests/bench/test_nuclear_backends.py tests/train/test_resume_generators.py 2>&1 | tee "$RESULTS/tests.log"
    ;;
  bench)
    # shellcheck disable=SC2086
    $NUAT bench "${common[@]}" --methods "$METHODS" --variants "$BENCH_VARIANTS" ${CHECKS---nuclear --loader --check-syncs} \
      ${PROFILE:+--profile "$PROFILE"} \
      --title "nuat bench: $MODEL, $DATASET, batch $BATCH, $DEVICE, ${BENCH_VARIANTS//,/ vs }" \
      --out "$RESULTS/bench" 2>&1 | tee "$RESULTS/bench.log"
    ;;
  flags)
    $NUAT bench "${common[@]}" --methods "$METHODS" --variants "$FLAG_VARIANTS" \
      --title "nuat bench: each eager fast-path flag alone ($MODEL, $DATASET, batch $BATCH, $DEVICE)" \
      --out "$RESULTS/flags" 2>&1 | tee "$RESULTS/flags.log"
    ;;
  accuracy)
    # Same hyperparameters; fp32 and fast both with nuclear-norm group 64 so that only the numeric
    # flags differ (the group size changes the regulariser, not the arithmetic). ACC_VARIANTS can
    # add e.g. "fp32-whole" (the faithful whole-batch nuclear norm).
    runs=${RUNS:-runs/gpu-speed}
    declare -A extra=([fp32]="--nuclear-group-size 64" [fast]="--fast"
                      [fp32-whole]="" [bf16]="--amp bf16 --nuclear-group-size 64"
                      [compile]="--compile --nuclear-group-size 64"
                      [fast-ro]="--fast --compile-mode reduce-overhead")
    table="$RESULTS/accuracy.md"
    {
      echo "# NuAT fp32 vs fast path: robust accuracy ($MODEL, $DATASET, batch $BATCH, $EPOCHS epochs, $DEVICE)"
      echo
      echo "| variant | flags | train s | val I-FGSM-7 | test clean | test PGD-20 |"
      echo "|---|---|---:|---:|---:|---:|"
    } > "$table"
    for v in ${ACC_VARIANTS:-fp32 fast}; do
      out="$runs/nuat-$v"
      # shellcheck disable=SC2086
      $NUAT train --dataset "$DATASET" --model "$MODEL" --method nuat --batch-size "$BATCH" --lr 0.2 \
        --epochs "$EPOCHS" --data-dir "$DATA" --device "$DEVICE" --out "$out" --overwrite --no-progress \
        --final-eval 0 ${extra[$v]} $TRAIN_ARGS 2>&1 | tee "$RESULTS/accuracy-$v.log"
      $NUAT eval "$out" --n "$N" --attacks clean,pgd-20 --data-dir "$DATA" --device "$DEVICE" --no-progress \
        --out "$out/eval" --overwrite 2>&1 | tee -a "$RESULTS/accuracy-$v.log"
      cp "$out/metrics.jsonl" "$RESULTS/accuracy-$v-metrics.jsonl"
      cp "$out/eval/best/eval.json" "$RESULTS/accuracy-$v-eval.json" 2>/dev/null || true
      $PYTHON - "$out" "$v" "${extra[$v]}" >> "$table" <<'PY'
import json, sys, pathlib
out, name, flags = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
summary = json.loads((out / "summary.json").read_text())
found = out / "eval" / "best" / "eval.json"  # nuat eval RUN_DIR writes eval/<checkpoint>/eval.json
ev = json.loads(found.read_text()) if found.exists() else {}
def acc(key):  # eval.json: {"attacks": [{"name": ..., "accuracy": ...}, ...], ...}
    for row in ev.get("attacks", []):
        if isinstance(row, dict) and row.get("name") == key:
            return f"{100 * row['accuracy']:.1f}%"
    return "see eval.json"
print(f"| {name} | `{flags or '(none)'}` | {summary['train_seconds']:.0f} | "
      f"{100 * summary['best_val_ifgsm7_acc']:.1f}% | {acc('clean')} | {acc('pgd-20')} |")
PY
    done
    # where and at which commit: the provenance the evaluations recorded (nuat eval's eval.json)
    $PYTHON - "$RESULTS" "accuracy ($EPOCHS epochs, ACC_VARIANTS=\"${ACC_VARIANTS:-fp32 fast}\")" >> "$table" <<'PY'
import glob, json, sys
found = sorted(glob.glob(f"{sys.argv[1]}/accuracy-*-eval.json"))
prov = [json.load(open(path))["provenance"] for path in found]
if prov:
    print(f"\nMachine: {'; '.join(sorted({p['machine'] for p in prov}))}. Commit: "
          f"{', '.join(sorted({p['commit'] for p in prov}))} (the eval.json files' provenance). "
          f"Command: stage {sys.argv[2]} of benchmarks/gpu/run_gpu_bench.sh.")
PY
    cat "$table"
    ;;
  wa)
    # The paper's ResNet-18 NuAT-WA row on the GPU path: batch 512 with nuclear-norm groups of 64
    # (the published M) and lr 0.2 instead of batch 64 / lr 0.1, EMA tau rescaled to the run's
    # length; a run stopped by its time limit (SIGTERM) keeps its best checkpoints and is evaluated.
    out=${RUNS:-runs/gpu-speed}/nuat-wa-fast
    # shellcheck disable=SC2086
    timeout --signal=TERM --kill-after=15 "${T_WA_TRAIN:-100000}" \
      $NUAT train --dataset "$DATASET" --model "$MODEL" --method nuat-wa ${WA_FLAGS:---fast} --batch-size "$BATCH" --lr 0.2 \
      --epochs "${WA_EPOCHS:-100}" --data-dir "$DATA" --device "$DEVICE" --out "$out" --overwrite --no-progress \
      --final-eval 0 $TRAIN_ARGS 2>&1 | tee "$RESULTS/wa-train.log" || true
    cp "$out/metrics.jsonl" "$RESULTS/wa-metrics.jsonl"
    cp "$out/config.json" "$RESULTS/wa-config.json"
    cp "$out/curves.png" "$RESULTS/wa-curves.png" 2>/dev/null || true
    $NUAT eval "$out/best-ema.safetensors" --n "$N" --attacks "${WA_ATTACKS:-clean,pgd-100,aa}" --data-dir "$DATA" --device "$DEVICE" \
      --no-progress --out "$RESULTS/wa-eval" --overwrite 2>&1 | tee "$RESULTS/wa-eval.log"
    ;;
  lease)
    # one device command: a stage that overruns its limit is stopped (SIGTERM, then SIGKILL) and
    # the next one starts; what is done so far is packed into one archive after each stage (the
    # device tool brings back few files)
    pack() { tar -czf "${OUT:-$RESULTS}/gpu-results.tar.gz.tmp" -C "$RESULTS" . \
               && mv "${OUT:-$RESULTS}/gpu-results.tar.gz.tmp" "${OUT:-$RESULTS}/gpu-results.tar.gz"; }
    if [[ -n "${OUT:-}" && "$RESULTS" == "$OUT" ]]; then RESULTS=$(mktemp -d); export RESULTS; fi
    declare -A limits=([env]=${T_ENV:-60} [tests]=${T_TESTS:-60} [bench]=${T_BENCH:-210} [flags]=${T_FLAGS:-110} [accuracy]=${T_ACC:-170}
                       [wa]=${T_WA:-600})
    for name in ${STAGES:-env bench flags accuracy}; do
      limit=${limits[$name]}
      start=$(date +%s)
      echo "== stage $name (limit ${limit}s) =="
      timeout --signal=TERM --kill-after=15 "$limit" "$0" "$name" || echo "== stage $name ended with exit $? =="
      echo "== stage $name took $(( $(date +%s) - start ))s =="
      pack
    done
    ;;
  *)
    sed -n '2,25p' "$0"
    exit 2
    ;;
esac
