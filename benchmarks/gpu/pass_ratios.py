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

from nuat.bench.timing import attack_step_ratio
from nuat.bench.timing import ratios_at_floor as implied  # (NuAT / ERM, PGD-10 / NuAT) for r
from nuat.bench.variants import parse_variant

HERE = Path(__file__).resolve().parent


def rows(path: Path) -> list[str]:
    report = json.loads(path.read_text())
    # reports made before the profiles ran ahead of the host-read check (commit aa59bd5) profiled
    # the compiled variants' steps eagerly
    eager_profiles = not report["config"].get("profile_before_host_checks")
    out = []
    for variant, passes in report.get("passes", {}).items():
        medians = {k: passes.get(k, {}).get("median") for k in ("forward_input_backward", "forward_full_backward")}
        if not all(medians.values()):
            continue
        r_wall = attack_step_ratio(medians)
        profile = passes.get("profile") or {}
        busy = {k: profile.get(k, {}).get("device_busy_ms") for k in medians}
        r_busy = attack_step_ratio(busy) if all(busy.values()) else None
        note = " (eager profile)" if eager_profiles and parse_variant(variant).compile else ""
        cells = [f"{r_wall:.2f}", *(f"{v:.2f}" for v in implied(r_wall))]
        cells += [f"{r_busy:.2f}{note}", *(f"{v:.2f}" for v in implied(r_busy))] if r_busy else ["", "", ""]
        out.append(f"| {path.name} | {variant} | " + " | ".join(cells) + " |")
    return out


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(HERE.glob("*.json"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"pass_ratios.py: no such report: {', '.join(missing)}; give nuat bench JSON files", file=sys.stderr)
        return 2
    table = []
    for path in paths:
        try:
            table += rows(path)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # not JSON, or not a bench report
            print(f"pass_ratios.py: {path} is not a nuat bench JSON report ({type(exc).__name__}: {exc})",
                  file=sys.stderr)
            return 2
    print("| report | variant | r (wall) | NuAT / ERM | PGD-10 / NuAT | r (busy) | NuAT / ERM | PGD-10 / NuAT |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
