"""The three CPU targets in every committed version of a `nuat bench` report (Markdown on stdout).

Reads each version of the JSON from git history (``git log`` / ``git show``), so the table in
docs/speed.md that says how stable the committed measurements are comes from the reports
themselves. Run from the repository: ``python benchmarks/cpu/history.py
[benchmarks/cpu/mnist-small-cnn-b128.json]``.
"""

from __future__ import annotations

import json
import subprocess
import sys


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def main(path: str = "benchmarks/cpu/mnist-small-cnn-b128.json") -> None:
    print("| measured at | clock, trials x iterations | load average before | NuAT / floor | NuAT / ERM "
          "| PGD-AT / NuAT |")
    print("|---|---|---|---:|---:|---:|")
    for version in _git("log", "--format=%H", "--", path).split():
        report = json.loads(_git("show", f"{version}:{path}"))
        methods = {m["method"]: m for m in report["methods"] if m["variant"] == "fp32"}
        nuat, cfg, env = methods["nuat"], report["config"], report["environment"]
        commit = env["commit"][:7] + ("+dirty" if env["commit"].endswith("+dirty") else "")
        load = env.get("load_average_before")
        print(f"| {commit} ({report['created'][:10]}) | {cfg['clock']}, {cfg['trials']} x {cfg['steps']} | "
              f"{load[0] if load else 'n/a'} | {nuat['measured_over_floor']['median']:.2f} | "
              f"{nuat['relative_to_erm']['median']:.2f} | {methods['pgd-at']['relative_to_nuat']['median']:.2f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
