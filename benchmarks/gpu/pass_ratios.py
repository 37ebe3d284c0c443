"""r = fi / ff from saved ``nuat bench`` reports: an attack step (forward + input backward) against a
training pass (forward + full backward), per variant, and what r implies for issue 7's two ratio
targets at the methods' floors (docs/speed.md, "The two ratio targets together bound one hardware
ratio"): ERM costs ff, NuAT fi + 2 ff and PGD-10 10 fi + ff, so NuAT / ERM = 2 + r and
PGD-10 / NuAT = (10 r + 1) / (r + 2); both targets hold only for 0.64 <= r <= 0.80.

    python benchmarks/gpu/pass_ratios.py [REPORT.json ...]   # default: benchmarks/gpu/*.json

Prints a Markdown table: r from the passes' median wall times and, where the report was made with
``--profile``, from their device busy times (profiles of compiled variants made before commit
aa59bd5 ran the eager step; the table marks them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nuat.bench.timing import ratios_at_floor as implied  # (NuAT / ERM, PGD-10 / NuAT) for r

HERE = Path(__file__).resolve().parent


def rows(path: Path) -> list[str]:
    report = json.loads(path.read_text())
    out = []
    for variant, passes in report.get("passes", {}).items():
        fi, ff = (passes.get(k, {}).get("median") for k in ("forward_input_backward", "forward_full_backward"))
        if not fi or not ff:
            continue
        profile = passes.get("profile") or {}
        busy = [profile.get(k, {}).get("device_busy_ms") for k in ("forward_input_backward", "forward_full_backward")]
        r_busy = busy[0] / busy[1] if all(busy) else None
        note = " (eager profile)" if r_busy is not None and "compile" in _parts(variant) else ""
        cells = [f"{fi / ff:.2f}", *(f"{v:.2f}" for v in implied(fi / ff))]
        cells += [f"{r_busy:.2f}{note}", *(f"{v:.2f}" for v in implied(r_busy))] if r_busy else ["", "", ""]
        out.append(f"| {path.name} | {variant} | " + " | ".join(cells) + " |")
    return out


def _parts(variant: str) -> set[str]:
    parts = set(variant.split("+"))
    return parts | ({"compile"} if "fast" in parts else set())


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(HERE.glob("*.json"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"pass_ratios.py: no such report: {', '.join(missing)}; give nuat bench JSON files", file=sys.stderr)
        return 2
    print("| report | variant | r (wall) | NuAT / ERM | PGD-10 / NuAT | r (busy) | NuAT / ERM | PGD-10 / NuAT |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for path in paths:
        for line in rows(path):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
