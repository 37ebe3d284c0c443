#!/usr/bin/env bash
# The CPU-only observations of docs/speed.md, each from a rerunnable command (small-cnn, real
# MNIST, batch 128, one torch thread, process CPU clock so that a shared machine's other jobs stay
# out of the times):
#   1. malloc: ERM and NuAT with glibc's default malloc (NUAT_KEEP_FREED_MEMORY=0): the page faults
#      and system time per iteration that keep_freed_cpu_memory removes
#      -> benchmarks/cpu/mnist-small-cnn-b128-malloc-default.{json,md,png}
#   2. bf16: ERM and NuAT, fp32 against bf16 autocast (this CPU has no native bf16), with the
#      default (kept) malloc: the page-fault line of this report is the "after" of 1
#      -> benchmarks/cpu/mnist-small-cnn-b128-bf16.{json,md,png}
#   3. threads2: ERM, NuAT and PGD-AT with torch's 2 threads on the 2 cores, wall clock (needs an
#      otherwise idle machine) -> benchmarks/cpu/mnist-small-cnn-b128-threads2.{json,md,png}
#   4. compile: the first epoch of a 10-batch NuAT run, eager against --compile, from a cold
#      inductor cache -> benchmarks/cpu/compile-first-epoch.md
#
# env: DATA (default ../shared/data), NUAT (default nuat), STEPS (5), TRIALS (10), STAGES (default
# "malloc bf16 threads2 compile"), SUFFIX (appended to the report names of 1-3, e.g. -epyc-avx512
# for another CPU type; default none).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
NUAT=${NUAT:-nuat}
STEPS=${STEPS:-5}
TRIALS=${TRIALS:-10}
SHAPE=(--dataset mnist --model small-cnn --batch-size 128 --steps "$STEPS" --trials "$TRIALS" --warmup 3
       --data-dir "$DATA" --quiet)
COMMON=("${SHAPE[@]}" --threads 1 --clock cpu)
for stage in ${STAGES:-malloc bf16 threads2 compile}; do
  case $stage in
    malloc)
      NUAT_KEEP_FREED_MEMORY=0 $NUAT bench --methods erm,nuat "${COMMON[@]}" \
        --title "nuat bench: CPU, glibc's default malloc (NUAT_KEEP_FREED_MEMORY=0)" \
        --out "benchmarks/cpu/mnist-small-cnn-b128-malloc-default${SUFFIX:-}" ;;
    bf16)
      $NUAT bench --methods erm,nuat --variants fp32,bf16 "${COMMON[@]}" \
        --title "nuat bench: CPU, fp32 against bf16 autocast" --out "benchmarks/cpu/mnist-small-cnn-b128-bf16${SUFFIX:-}" ;;
    threads2)
      $NUAT bench --methods erm,nuat,pgd-at "${SHAPE[@]}" --threads 2 --clock wall \
        --title "nuat bench: CPU, torch threads 2" --out "benchmarks/cpu/mnist-small-cnn-b128-threads2${SUFFIX:-}" ;;
    compile)
      tmp=$(mktemp -d)
      trap 'rm -rf "$tmp"' EXIT
      report=benchmarks/cpu/compile-first-epoch.md
      {
        echo "# CPU: the first epoch of NuAT, eager against --compile"
        echo
        echo "- small-cnn, real MNIST, batch 128, 10 batches (--train-limit 1280), 1 epoch, torch threads 1;" \
             "fresh inductor cache (TORCHINDUCTOR_CACHE_DIR in a new temporary folder)"
        echo "- machine: $(nproc) cores, $(uname -m); commit \`$(git rev-parse HEAD)$(git status --porcelain \
             --untracked-files=no | grep -q . && echo +dirty)\`; $(date -u +%FT%TZ)"
        echo "- command: \`benchmarks/cpu/run_cpu_notes.sh\` (STAGES=compile)"
        echo
        echo "| run | training seconds of the epoch (metrics.jsonl; validation excluded) | whole process seconds |"
        echo "|---|---:|---:|"
      } > "$tmp/report.md"
      for mode in eager compile; do
        flag=(); [[ $mode == compile ]] && flag=(--compile)
        start=$(date +%s.%N)
        OMP_NUM_THREADS=1 TORCHINDUCTOR_CACHE_DIR="$tmp/inductor" $NUAT train --dataset mnist --model small-cnn \
          --method nuat --epochs 1 --batch-size 128 --train-limit 1280 --final-eval 0 --data-dir "$DATA" \
          --out "$tmp/$mode" --no-progress "${flag[@]}" > "$tmp/$mode.log" 2>&1
        end=$(date +%s.%N)
        epoch=$(python3 -c "import json,sys; print(f\"{json.loads(open(sys.argv[1]).readline())['seconds']:.1f}\")" \
          "$tmp/$mode/metrics.jsonl")
        echo "| $mode | $epoch | $(python3 -c "print(f'{$end - $start:.1f}')") |" >> "$tmp/report.md"
      done
      mv "$tmp/report.md" "$report"
      cat "$report" ;;
    *) echo "unknown stage '$stage'; choose from: malloc bf16 threads2 compile" >&2; exit 2 ;;
  esac
done
