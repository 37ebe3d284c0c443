#!/usr/bin/env bash
# Seed check of the baselines table: train METHODS again with another seed (run_all.sh with SEED,
# same recipe) into runs/baselines-seeds/s<seed>/<method>, evaluate them with eval_all.sh, and
# print Markdown tables of all seeds, seed 0 from runs/baselines (BASE): the means over seeds with
# AutoAttack's range, then every run (clean, PGD-100, GAMA-PGD-100, AutoAttack, images that only
# the black-box Square stage broke) with a mean row per method.
# results/baselines/seed_check.md came from (the two seeds may run side by side first):
#   M="erm fgsm-at rfgsm-at fbf gat gat-wa nuat-h nuat-wa-h nuat nuat-wa nuat2 nuat2-wa pgd-at"
#   M="$M pgd-at-wa trades awp"
#   scripts/baselines/seed_check.sh 1 $M > /dev/null
#   scripts/baselines/seed_check.sh 2 $M > results/baselines/seed_check.md
#
# Usage: scripts/baselines/seed_check.sh SEED [METHODS...]   (default methods: nuat-h nuat)
#   env: DATA (default ../shared/data), NUAT (default nuat), RUNS (default runs/baselines-seeds),
#        BASE (seed 0's runs, default runs/baselines)
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
  echo "seed_check.sh: error: the first argument must be a seed (a non-negative integer); usage: seed_check.sh SEED [METHODS...]" >&2
  exit 2
fi
seed=$1
shift
methods=${*:-nuat-h nuat}
RUNS=${RUNS:-runs/baselines-seeds}
dirs=()
for m in $methods; do dirs+=("$RUNS/s$seed/$m"); done
# shellcheck disable=SC2086
SEED=$seed RUNS=$RUNS/s$seed scripts/baselines/run_all.sh $methods > /dev/null
scripts/baselines/eval_all.sh "${dirs[@]}" > /dev/null
# shellcheck disable=SC2086
python3 - "$RUNS" "${BASE:-runs/baselines}" "$seed" $methods <<'PY'
import glob, json, os, sys
runs, base, last_seed, methods = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
table, summary, trained, evaluated, machines = [], [], set(), set(), set()
for m in methods:
    # the reported checkpoint's evaluation only, chosen as eval_all.sh does (best-ema where kept)
    reported = lambda run: f"{run}/eval/{'best-ema' if os.path.exists(f'{run}/best-ema.safetensors') else 'best'}/eval.json"
    found = [(0, f"{base}/{m}")]
    found += [(int(run.split("/")[-2][1:]), run) for run in glob.glob(f"{runs}/s*/{m}")]
    found = [(seed, run) for seed, run in found if os.path.exists(reported(run))]
    sums = {}  # attack -> accuracies over this method's seeds, for the mean row
    for seed, run in sorted(found):
        result = json.load(open(reported(run)))
        trained.add(json.load(open(f"{run}/config.json"))["commit"])
        evaluated.add(result["provenance"]["commit"])
        machines.add(result["provenance"]["machine"])
        rows = {a["name"]: a for a in result["attacks"]}
        aa = rows.get("aa")
        comps = {c["name"]: c["robust"] for c in aa.get("components", [])} if aa else {}
        square = comps["fab-t"] - comps["square"] if comps else "-"
        acc = lambda k: f"{100 * rows[k]['accuracy']:.1f}" if k in rows else "-"
        n = rows["clean"]["n"] if "clean" in rows else "-"
        for k in ("clean", "pgd-100", "gama-pgd-100", "aa"):
            if k in rows:
                sums.setdefault(k, []).append(100 * rows[k]["accuracy"])
        table.append(f"| {m} | {seed} | {acc('clean')} ({n}) | {acc('pgd-100')} | {acc('gama-pgd-100')} | "
                     f"{acc('aa')} ({aa['n'] if aa else '-'}) | {square} |")
    if len(found) > 1:
        # an attack missing on some seed gets "-", not a mean over fewer seeds
        every = {k: v for k, v in sums.items() if len(v) == len(found)}
        mean = lambda k: f"{sum(every[k]) / len(every[k]):.1f}" if k in every else "-"
        reach = lambda k: f"{min(every[k]):.1f}-{max(every[k]):.1f}" if k in every else "-"
        table.append(f"| {m} | mean of {len(found)} | {mean('clean')} | {mean('pgd-100')} | "
                     f"{mean('gama-pgd-100')} | {mean('aa')} | |")
        summary.append(f"| {m} | {len(found)} | {mean('clean')} | {mean('pgd-100')} | {mean('aa')} | {reach('aa')} |")
print(f"# Seed check: {', '.join(methods)}, Fashion-MNIST recipe of run_all.sh, seeds 0-{last_seed}")
print()
print(f"Written by `scripts/baselines/seed_check.sh {last_seed}` after it trained and evaluated the other seeds; "
      f"seed 0 is the run of `table.md` ({base}). Accuracies in %; the image counts in parentheses. "
      f"Machine: {'; '.join(sorted(machines))}. Trained at: {', '.join(sorted(trained))}. "
      f"Evaluated at: {', '.join(sorted(evaluated))}.")
print()
if summary:
    print("## Means over seeds")
    print()
    print("| method | seeds | clean | PGD-100 | AA | AA range over seeds |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(summary))
    print()
    print("## Every run")
    print()
print("| method | seed | clean (n) | PGD-100 | GAMA-PGD-100 | AA (n) | images only Square broke |")
print("|---|---:|---:|---:|---:|---:|---:|")
print("\n".join(table))
PY
