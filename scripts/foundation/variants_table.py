"""Side-by-side table of NuAT variant runs (Markdown on stdout) from their run directories.

Every number is read from files that `nuat train` wrote (summary.json, config.json,
metrics.jsonl) and from process_time.json written by train_fashion_variants.sh.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(run: Path) -> tuple[str, dict]:
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    timing = run / "process_time.json"
    timed = json.loads(timing.read_text()) if timing.exists() else {}
    process = timed.get("process_seconds", float("nan"))
    load = timed.get("load_average_before")
    test = summary["test"]
    cells = []
    for name in ("best", "best-ema"):
        if name in test:
            r = test[name]
            cells.append(f"{name}: epoch {r['epoch']}, clean {100 * r['clean_acc']:.1f}%, PGD-100 {100 * r['pgd100_acc']:.1f}%")
    effective = metrics[-1].get("effective_two_step_epochs")
    schedule = f"lr {config['lr']:g}, up {config['lr_up']:.2f}, down {config['lr_down']:.2f}"
    line = (f"| {config['method']} | `{run}` | {schedule} | {' ; '.join(cells)} | {summary['train_seconds']:.0f} | "
            f"{'-' if process != process else f'{process:.0f}'} | {'-' if load is None else load} | "
            f"{'-' if effective is None else f'{effective:.2f}'} |")
    return line, config


def main(runs: list[str]) -> None:
    lines, configs = zip(*(row(Path(r)) for r in runs))
    c = configs[0]
    # the test image count is each run's own --final-eval, read back rather than assumed
    counts = {cfg["method"]: json.loads((Path(r) / "summary.json").read_text())["test"]["n"]
              for r, cfg in zip(runs, configs)}
    images = " or ".join(f"{n:,}" for n in sorted(set(counts.values()))) + " test images"
    if len(set(counts.values())) > 1:
        images += " (per row: " + ", ".join(f"{m} {n:,}" for m, n in counts.items()) + ")"
    print(f"# NuAT variants on Fashion-MNIST (eps {c['eps']:.3g}, {c['model']}, {c['epochs']} epochs, batch "
          f"{c['batch_size']}, seed {c['seed']})\n")
    print(f"Test numbers: first {images}, best checkpoint by validation I-FGSM-7, reloaded with "
          "`nuat.load_model`; PGD-100 with uniform random start, step eps/10.\n")
    print("| method | run | LR schedule (fractions of the run) | best checkpoint(s) | train seconds | "
          "whole process seconds | load average at start | effective two-step epochs |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(lines))
    print("\nSeconds are wall time and depend on what else ran on the 2-core machine; the 1-minute load average "
          "at each run's start (where recorded) says how busy it was.")
    commits = sorted({cfg["commit"] for cfg in configs})
    machines = sorted({cfg["machine"] for cfg in configs})
    print(f"\nMachine: {'; '.join(machines)}. Commit: {', '.join(commits)}.")
    baselines = "; rows from `runs/baselines/` come from `scripts/baselines/run_all.sh` (shared LR schedule of " \
        "the baselines table)" if any("runs/baselines/" in r for r in runs) else ""
    print(f"Runs: {' '.join(runs)}. Command for a run `runs/fashion-mnist-METHOD`: "
          f"`scripts/foundation/train_fashion_variants.sh ../shared/data METHOD`{baselines}.")


if __name__ == "__main__":
    main(sys.argv[1:])
