"""Does the README's main job reproduce the committed run bit for bit on this CPU?

Trains the README's NuAT run (Fashion-MNIST, small-cnn, eps 0.1, 8 epochs, batch 128, seed 0, torch's
default thread count) twice in fresh processes: with torch's CPU kernels as this machine picks them,
and with their instruction set capped at AVX2 (``ATEN_CPU_CAPABILITY=avx2`` for ATen's vectorised
kernels, ``ONEDNN_MAX_CPU_ISA=AVX2`` for oneDNN's convolutions). Each run's ``metrics.jsonl`` is
compared with the committed ``results/foundation/fashion-mnist-nuat-metrics.jsonl`` (trained on an
AVX2 machine), time fields aside, and a Markdown table goes to stdout: which fields differ, from
which epoch, and each run's test numbers. Exit 0 if some setting reproduced it, else 1.

A finished run (summary.json present) is reused. About 3.5 min per run on 2 cores.

Usage: python scripts/foundation/isa_check.py [--data-dir ../shared/data] [--out runs/isa-check]
       [--nuat .venv/bin/nuat]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "baselines"))
from compare_runs import epoch_differences  # noqa: E402

REFERENCE = ROOT / "results" / "foundation" / "fashion-mnist-nuat-metrics.jsonl"
#: the README's first command, as trained by scripts/foundation/train_fashion_variants.sh
TRAIN = ["train", "--dataset", "fashion-mnist", "--model", "small-cnn", "--method", "nuat", "--eps", "0.1",
         "--epochs", "8", "--batch-size", "128", "--seed", "0", "--no-progress", "--overwrite"]
SETTINGS = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}


def _first_differing(per_epoch: list[set[str]]) -> int | None:
    return next((epoch for epoch, fields in enumerate(per_epoch, 1) if fields), None)


def first_differing_epoch(a: Path, b: Path) -> int | None:
    """The first epoch (1-based line) whose metrics (time fields aside) differ between two
    metrics.jsonl files, None where none does."""
    return _first_differing(epoch_differences(a, b))


def train(nuat: str, data_dir: str, out: Path, caps: dict[str, str]) -> None:
    if (out / "summary.json").exists():
        return
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    print(f"isa_check: training {out} ({' '.join(f'{k}={v}' for k, v in caps.items()) or 'no caps'})",
          file=sys.stderr)
    subprocess.run([nuat, *TRAIN, "--data-dir", data_dir, "--out", str(out)], env={**env, **caps}, check=True,
                   stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("NUAT_DATA", "../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("runs/isa-check"))
    parser.add_argument("--nuat", default=str(Path(sys.executable).with_name("nuat")))
    args = parser.parse_args(argv)
    if not Path(args.data_dir).is_dir():
        print(f"isa_check.py: error: --data-dir {args.data_dir} is not a folder; give the folder holding "
              "fashion-mnist/", file=sys.stderr)
        return 2
    needs_training = any(not (args.out / name / "summary.json").exists() for name in SETTINGS)
    if needs_training and shutil.which(args.nuat) is None:
        print(f"isa_check.py: error: --nuat {args.nuat} is not an executable; give the nuat command of the "
              "project's environment (e.g. .venv/bin/nuat)", file=sys.stderr)
        return 2
    rows, commits, reproduced = [], set(), False
    for name, caps in SETTINGS.items():
        run = args.out / name
        train(args.nuat, args.data_dir, run, caps)
        summary = json.loads((run / "summary.json").read_text())
        commits.add(summary["commit"])
        per_epoch = epoch_differences(REFERENCE, run / "metrics.jsonl")
        differ = set().union(*per_epoch)
        first = _first_differing(per_epoch)
        reproduced |= not differ
        best = summary["test"]["best"]
        settings = " ".join(f"`{k}={v}`" for k, v in caps.items()) or "(none)"
        found = "identical" if not differ else f"differ from epoch {first}: " + ", ".join(sorted(differ))
        rows.append(f"| {name} | {settings} | {summary['machine']} | {found} | "
                    f"{best['epoch']} | {100 * best['clean_acc']:.1f} | {100 * best['pgd100_acc']:.1f} |")
    print("# The README's NuAT run against the committed one, per instruction set\n")
    print(f"Reference: `{REFERENCE.relative_to(ROOT)}`, the `metrics.jsonl` of the `nuat` row of "
          "`results/foundation/fashion-mnist-variants.md` (its test numbers are in that row).\n")
    print("| setting | caps | machine (from the run's summary.json) | metrics.jsonl vs reference (time fields aside) "
          "| best epoch | test clean % | test PGD-100 % |")
    print("|---|---|---|---|---:|---:|---:|")
    print("\n".join(rows))
    print(f"\nTrained at commit {', '.join(sorted(commits))}. Command: `python scripts/foundation/isa_check.py "
          f"--data-dir {args.data_dir}`.")
    return 0 if reproduced else 1


if __name__ == "__main__":
    sys.exit(main())
