"""Whether a rerun reproduced a run: weights, per-epoch metrics and evaluation results compared.

For each method folder present under both roots (e.g. an older ``runs/baselines`` and a rerun of
``scripts/baselines/run_all.sh`` + ``eval_all.sh`` at another commit), compares
- every ``*.safetensors`` checkpoint tensor for tensor, bit for bit;
- ``metrics.jsonl`` line for line, leaving out the fields that measure time;
- ``eval/<checkpoint>/eval.json``: each attack's robust count and accuracy.
Prints one Markdown row per method and exits 1 if anything differs.

Usage: python scripts/baselines/compare_runs.py OLD_ROOT NEW_ROOT [METHODS...]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

#: metrics.jsonl fields that measure time, not what was computed
TIME_FIELDS = {"seconds", "images_per_s", "elapsed_s", "val_seconds"}


def _weights_equal(a: Path, b: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def same_value(x: object, y: object) -> bool:
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return x == y


def epoch_differences(a: Path, b: Path) -> list[set[str]]:
    """Per line of two metrics.jsonl files (one epoch each), the fields (time fields aside) whose
    values differ or that only one line has; a line that only the longer file has differs in
    ``"epochs"``."""
    rows_a = [json.loads(line) for line in a.read_text().splitlines()]
    rows_b = [json.loads(line) for line in b.read_text().splitlines()]
    differ = [(ra.keys() ^ rb.keys()) | {k for k in ra.keys() & rb.keys()
                                         if k not in TIME_FIELDS and not same_value(ra[k], rb[k])}
              for ra, rb in zip(rows_a, rows_b)]
    return differ + [{"epochs"}] * abs(len(rows_a) - len(rows_b))


def metrics_differences(a: Path, b: Path) -> set[str]:
    """The metrics.jsonl fields (time fields aside) whose values differ in some epoch; a field
    present in only one file, or a different epoch count (``"epochs"``), counts as a difference."""
    return set().union(*epoch_differences(a, b))


def _eval_rows(path: Path) -> dict[str, tuple[int, float]]:
    return {a["name"]: (a["robust"], a["accuracy"]) for a in json.loads(path.read_text())["attacks"]}


def _commit(run: Path) -> str:
    return json.loads((run / "config.json").read_text()).get("commit", "?")


def compare(old: Path, new: Path) -> tuple[str, bool]:
    """(Markdown row, whether everything compared is equal) for one method's two run folders."""
    checkpoints = sorted(p.name for p in old.glob("*.safetensors") if (new / p.name).exists())
    weights = all(_weights_equal(old / c, new / c) for c in checkpoints) if checkpoints else None
    differ = metrics_differences(old / "metrics.jsonl", new / "metrics.jsonl")
    evals = sorted(p.relative_to(old) for p in old.glob("eval/*/eval.json") if (new / p.relative_to(old)).exists())
    evals_equal = all(_eval_rows(old / e) == _eval_rows(new / e) for e in evals) if evals else None
    ok = weights is not False and not differ and evals_equal is not False

    def cell(value: bool | None) -> str:
        return "n/a" if value is None else ("same" if value else "**differ**")

    return (f"| {old.name} | {_commit(old)} | {_commit(new)} | {cell(weights)} ({len(checkpoints)}) | "
            f"{'same' if not differ else '**differ**: ' + ', '.join(sorted(differ))} | "
            f"{cell(evals_equal)} ({len(evals)}) |", ok)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    old_root, new_root = Path(argv[0]), Path(argv[1])
    for root in (old_root, new_root):
        if not root.is_dir():
            print(f"compare_runs.py: error: {root} is not a folder; give two roots of run folders", file=sys.stderr)
            return 2
    methods = argv[2:] or sorted(p.name for p in new_root.iterdir() if (p / "summary.json").exists()
                                 and (old_root / p.name / "summary.json").exists())
    print("| method | trained at (old) | trained at (new) | checkpoints | metrics.jsonl (time fields aside) "
          "| eval.json robust counts |")
    print("|---|---|---|---|---|---|")
    all_ok = True
    for m in methods:
        row, ok = compare(old_root / m, new_root / m)
        print(row)
        all_ok &= ok
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
