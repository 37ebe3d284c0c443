"""Summaries of an evaluation: accuracy per attack, components, worst case, flags; JSON and Markdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nuat.attacks.autoattack import square_flag
from nuat.checkpoints import atomic_write_text
from nuat.eval.registry import AA_LABELS, Job
from nuat.eval.state import EvalState

FORMAT = "nuat-eval/1"


def _count(text: str) -> int:
    return text.count("1")


def summarize(jobs: list[Job], state: EvalState) -> dict[str, Any]:
    """Rows (one per attack), AutoAttack components and worst cases from a finished state.

    The worst case over a set of attacks counts an image as robust only if it survived every
    one of them. When attacks ran on different numbers of images (``aa@1000``), there is one
    worst case per image count: the first n images with every attack that covered them.
    """
    clean_text = state.jobs[jobs[0].key]["flags"]["clean"]
    rows: list[dict[str, Any]] = []
    flags_of: dict[str, str] = {}
    for job in jobs:
        rec = state.jobs[job.key]
        messages = list(rec["messages"])
        components = []
        if job.components:
            acc = {"clean": _count(clean_text[: job.n]) / job.n}
            for comp in job.components:
                short = comp.split("/", 1)[1]
                robust = _count(rec["flags"][comp])
                acc[short] = robust / job.n
                components.append({"name": short, "label": AA_LABELS.get(short, short), "robust": robust,
                                   "accuracy": robust / job.n, "seconds": rec["seconds"][comp]})
            sq = square_flag(acc)  # the package's own check, on the totals
            if sq and sq not in messages:
                messages.append(sq)
        for name in job.rows:
            text = rec["flags"][name]
            flags_of[name] = text
            rows.append({"name": name, "label": job.labels[name], "n": job.n, "robust": _count(text),
                         "accuracy": _count(text) / job.n, "seconds": rec["seconds"][name],
                         "details": job.details[name], "components": components if name == job.final else [],
                         "flags": messages if name == job.final else []})
    worst = []
    sizes = sorted({r["n"] for r in rows}, reverse=True)
    for size in sorted(sizes):
        covering = [r for r in rows if r["n"] >= size]
        robust = sum(all(flags_of[r["name"]][i] == "1" for r in covering) for i in range(size))
        worst.append({"n": size, "attacks": [r["name"] for r in covering], "robust": robust,
                      "accuracy": robust / size})
    return {"attacks": rows, "worst_case": worst}


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(result: dict[str, Any]) -> str:
    """The evaluation table with its provenance, as Markdown."""
    ck, prov = result["checkpoint"], result["provenance"]
    meta = ck.get("metadata", {})
    trained = ", ".join(f"{k} {meta[k]}" for k in ("method", "epoch") if k in meta)
    lines = [
        f"## Robust evaluation: `{ck['name']}` ({ck['model']}{', ' + trained if trained else ''})",
        "",
        f"- checkpoint: `{ck['path']}`, sha256 `{ck['sha256']}`"
        + (f", trained at commit `{meta['commit']}`" if "commit" in meta else ""),
        f"- data: {result['dataset']} test set, first {result['n']:,} images; eps {result['eps_text']} "
        f"(L-inf, pixels in [0, 1]); seed {result['seed']}; batch size {result['batch_size']}",
        f"- evaluated at commit `{prov['commit']}` with nuat {prov['nuat_version']} on {prov['machine']}",
        "",
        "| attack | images | accuracy (%) | robust | seconds | details | flags |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for r in result["attacks"]:
        details = r["details"]
        if r["components"]:
            details += "; after each: " + ", ".join(f"{c['label']} {_pct(c['accuracy'])}%" for c in r["components"])
        flags = " ".join(f"FLAG: {m}" for m in r["flags"]) or ""
        lines.append(f"| {r['label']} | {r['n']:,} | {_pct(r['accuracy'])} | {r['robust']:,} | {r['seconds']:.1f} | "
                     f"{_md_escape(details)} | {_md_escape(flags)} |")
    total = sum(r["name"] != "clean" for r in result["attacks"])
    for w in result["worst_case"]:
        k = sum(a != "clean" for a in w["attacks"])
        if k == 0:  # clean only: the worst case is the clean row
            continue
        noun = "attack" if k == 1 else "attacks"
        scope = f"all {k} {noun}" if k == total else f"the {k} {noun} run on all {w['n']:,}"
        lines.append(f"| **worst case** ({scope}) | {w['n']:,} | **{_pct(w['accuracy'])}** | {w['robust']:,} | | "
                     f"robust = survived every one of: {', '.join(w['attacks'])} | |")
    lines.append("")
    lines.append("Accuracies count a misclassified clean image as not robust. `seconds` is wall time on the "
                 "machine above; PGD-N read out of one run give the time that run took to reach step N.")
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, result: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``eval.json`` and ``eval.md`` into ``out`` atomically; returns their paths."""
    json_path, md_path = out / "eval.json", out / "eval.md"
    text = json.dumps(result, indent=2) + "\n"
    atomic_write_text(json_path, text)
    md = render_markdown(result)
    atomic_write_text(md_path, md)
    return json_path, md_path
