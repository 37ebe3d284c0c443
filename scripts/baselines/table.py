"""The baselines table (Markdown) from the run directories of run_all.sh and their evaluations.

Every number is read from files that the commands wrote: config.json, summary.json and
metrics.jsonl (`nuat train`), process_time.json (run_all.sh) and <run>/eval/<checkpoint>/eval.json
(`nuat eval`, via eval_all.sh). Where a run has no eval.json, clean and PGD-100 come from the check
`nuat train` runs at its end (same images, same attack settings) and GAMA/AA are left empty.

Usage: python scripts/baselines/table.py [RUN_DIRS...] [--out results/baselines/table.md]
(default: every run under runs/baselines, in the order of run_all.sh).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

ORDER = ["erm", "fgsm-at", "rfgsm-at", "fbf", "gat", "gat-wa", "nuat", "nuat-wa", "nuat2", "nuat2-wa", "nuat-h",
         "nuat-wa-h", "pgd-at", "pgd-at-wa", "trades", "trades-wa", "awp", "trades-awp"]

#: AutoAttack accuracy (%) published in the NuAT paper: Table 1a (CIFAR-10, ResNet-18, AA v1),
#: Table 2 (MNIST, AA v1) and Table 1b (CIFAR-10, WideResNet-34-10, AA v2; NuAT-WA-H: the 60+6 run).
PAPER_AA = {
    "erm": (0.00, 0.00, None), "fgsm-at": (0.00, None, None), "rfgsm-at": (33.16, 82.28, None),
    "fbf": (43.12, 79.02, 43.10), "gat": (47.30, 90.62, 50.12), "gat-wa": (48.28, 91.48, 51.50),
    "nuat": (49.24, 93.11, 50.81), "nuat-wa": (50.75, 93.10, 53.36), "nuat2": (None, None, 51.27),
    "nuat2-wa": (None, None, 54.76), "nuat-h": (None, None, 51.58), "nuat-wa-h": (None, None, 53.81),
    "pgd-at": (48.75, 91.81, 52.19), "pgd-at-wa": (None, None, None), "trades": (49.06, 92.19, 53.80),
    "trades-wa": (49.39, None, None), "awp": (51.45, 93.47, 56.17), "trades-awp": (None, None, None),
}


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _eval(run: Path, name: str) -> tuple[dict[str, dict], str | None]:
    """Rows of ``nuat eval`` by attack name (``clean``, ``pgd-100``, ``gama-pgd-100``, ``aa``...) and
    the commit the evaluation ran at (None without an evaluation)."""
    result = _json(run / "eval" / name / "eval.json")
    if not result:
        return {}, None
    return {r["name"]: r for r in result["attacks"]}, result.get("provenance", {}).get("commit", "unknown")


def collect(run: Path) -> dict:
    """One run's numbers, as plain values (fractions for accuracies)."""
    config, summary = _json(run / "config.json"), _json(run / "summary.json")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    name = "best-ema" if "ema" in config.get("averages", {}) else "best"
    test = summary.get("test", {}).get(name, {})
    rows, eval_commit = _eval(run, name)
    aa = next((r for key, r in rows.items() if key == "aa" or key.startswith("aa-") or key == "autoattack"), None)
    epoch = (test or {}).get("epoch")
    cost = summary.get("cost", {})
    epochs = max(len(metrics), 1)
    process = _json(run / "process_time.json")
    return {
        "method": config["method"], "config": config, "checkpoint": name, "epoch": epoch,
        "clean": rows["clean"]["accuracy"] if "clean" in rows else test.get("clean_acc"),
        "pgd100": rows["pgd-100"]["accuracy"] if "pgd-100" in rows else test.get("pgd100_acc"),
        "gama": rows["gama-pgd-100"]["accuracy"] if "gama-pgd-100" in rows else None,
        "aa": aa["accuracy"] if aa else None, "aa_n": aa["n"] if aa else None,
        "n": rows["clean"]["n"] if "clean" in rows else summary.get("test", {}).get("n"),
        "evaluated_by": "nuat eval" if rows else "nuat train final check",
        "eval_commit": eval_commit,
        "train_seconds": summary["train_seconds"],
        "process_seconds": process["process_seconds"] if process else None,
        "images_per_s": cost.get("images_per_s"),
        "passes": tuple(sum(r[k] for r in metrics) / epochs for k in
                        ("forward_per_example", "input_backward_per_example", "full_backward_per_example")),
        "two_step_epochs": metrics[-1].get("effective_two_step_epochs") if metrics else None,
        "collapse_epochs": [r["epoch"] for r in metrics if r.get("collapse")],
    }


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _num(x: float | None, fmt: str = ".0f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def robust_metric(r: dict) -> tuple[str, float | None]:
    """The strongest attack evaluated for a run: AutoAttack, else GAMA-PGD-100, else PGD-100."""
    for key, label in (("aa", "AA"), ("gama", "GAMA-PGD-100"), ("pgd100", "PGD-100")):
        if r[key] is not None:
            return label, r[key]
    return "-", None


def kendall_tau(pairs: list[tuple[float, float]]) -> float:
    """Kendall's tau-a of paired values (ties count as neither concordant nor discordant)."""
    score = 0
    for (a1, b1), (a2, b2) in itertools.combinations(pairs, 2):
        score += int(math.copysign(1, (a1 - a2) * (b1 - b2))) if (a1 - a2) * (b1 - b2) != 0 else 0
    n = len(pairs)
    return score / (n * (n - 1) / 2) if n > 1 else float("nan")


def render(results: list[dict]) -> str:
    erm = next((r for r in results if r["method"] == "erm"), None)
    base = erm["train_seconds"] if erm else None
    c = results[0]["config"]
    lines = [
        f"# Baselines and NuAT variants on {c['dataset']} (eps {c['eps']:.3g}, {c['model']}, {c['epochs']} epochs, "
        f"batch {c['batch_size']}, lr {c['lr']}, LR up {c['lr_up']} / down {c['lr_down']} of the run, seed {c['seed']})",
        "",
        "Written by `scripts/baselines/table.py` from the run directories of `scripts/baselines/run_all.sh` and the "
        "evaluations of `scripts/baselines/eval_all.sh`. Accuracies (%) on the first "
        f"{_num(results[0]['n'])} test images (AutoAttack: the first n shown), of the checkpoint with the best "
        "validation I-FGSM-7 accuracy (the EMA model for -WA methods). PGD-100: uniform random start, step eps/10.",
        "",
        "Cost: passes per training example per epoch, as forwards / input-only backwards (attack steps) / full "
        "backwards (to the weights); train seconds exclude validation and checkpoints; x ERM is train seconds "
        "relative to ERM (runs hours apart on a shared machine: `results/baselines/step_cost.md` compares the "
        "methods' step times measured round-robin in one process).",
        "",
        "| method | model (epoch) | clean | PGD-100 | GAMA-PGD-100 | AA (n) | passes F / Bx / Bθ | train s | x ERM "
        "| images/s | paper AA: C10 RN-18 / MNIST / C10 WRN |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in results:
        f, bx, bt = r["passes"]
        paper = PAPER_AA.get(r["method"], (None, None, None))
        paper_text = " / ".join("–" if v is None else f"{v:.2f}" for v in paper)
        aa = "–" if r["aa"] is None else f"{_pct(r['aa'])} ({r['aa_n']})"
        extra = f", {r['two_step_epochs']:.2f} eff. two-step epochs" if r["two_step_epochs"] is not None else ""
        rel = "–" if not base else f"{r['train_seconds'] / base:.1f}"
        lines.append(
            f"| {r['method']} | {r['checkpoint']} ({r['epoch']}){extra} | {_pct(r['clean'])} | {_pct(r['pgd100'])} | "
            f"{_pct(r['gama'])} | {aa} | {f:.2f} / {bx:.2f} / {bt:.2f} | {_num(r['train_seconds'])} | {rel} | "
            f"{_num(r['images_per_s'])} | {paper_text} |")
    lines += ["", "## Ranking against the paper", ""]
    for column, label in ((0, "CIFAR-10 ResNet-18 AA (Table 1a)"), (1, "MNIST AA (Table 2)"),
                          (2, "CIFAR-10 WRN-34-10 AA (Table 1b)")):
        pairs, names = [], []
        for r in results:
            paper = PAPER_AA.get(r["method"], (None, None, None))[column]
            metric, ours = robust_metric(r)
            if paper is not None and ours is not None:
                pairs.append((paper, 100 * ours))
                names.append(r["method"])
        if len(pairs) > 1:
            order_paper = [n for _, n in sorted(zip([p for p, _ in pairs], names), reverse=True)]
            order_ours = [n for _, n in sorted(zip([o for _, o in pairs], names), reverse=True)]
            lines.append(f"- vs {label}, {len(pairs)} methods: Kendall tau {kendall_tau(pairs):.2f}. "
                         f"Paper order: {', '.join(order_paper)}. Here: {', '.join(order_ours)}.")
    used = sorted({robust_metric(r)[0] for r in results})
    # the ranking's images: AutoAttack's subset where AA ranks, else the PGD/GAMA images
    n = min((r["aa_n"] if robust_metric(r)[0] == "AA" else r["n"]) or 1000 for r in results)
    se = 100 * math.sqrt(0.21 / n)
    lines.append(f"- 'Here' ranks by the strongest attack run on each model ({', '.join(used)}). One standard "
                 f"error of an accuracy near 70% on {n} images is {se:.1f} points, so neighbours closer than "
                 f"about {2 * se:.0f} points are not ordered by these runs.")
    collapsed = [f"{r['method']} (epochs {', '.join(map(str, r['collapse_epochs']))})" for r in results
                 if r["collapse_epochs"]]
    if collapsed:
        lines.append(f"- The loop flagged suspected catastrophic overfitting in: {'; '.join(collapsed)}.")
    commits = sorted({r["config"]["commit"] for r in results})
    machines = sorted({r["config"]["machine"] for r in results})
    evaluated = sorted({r["evaluated_by"] for r in results})
    eval_commits = sorted({r["eval_commit"] for r in results if r["eval_commit"]})
    lines += ["", f"Machine: {'; '.join(machines)}. Trained at: {', '.join(commits)}. Evaluated at: "
              f"{', '.join(eval_commits) or '-'}. Robust numbers from: {', '.join(evaluated)}. "
              "Runs of this table ran with OMP_NUM_THREADS=1, one or two at a "
              "time, on a shared 2-core machine, so seconds carry noise from other jobs; passes per example do not."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="run directories (default: runs/baselines/*)")
    parser.add_argument("--out", default="results/baselines/table.md")
    args = parser.parse_args()
    runs = [Path(r) for r in args.runs] or sorted(
        (p for p in Path("runs/baselines").iterdir() if (p / "summary.json").exists()),
        key=lambda p: ORDER.index(p.name) if p.name in ORDER else len(ORDER))
    text = render([collect(r) for r in runs if (r / "summary.json").exists()])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
