"""``nuat bench`` output: the JSON record, a Markdown report (tables of passes and methods) and
a figure of the methods' times against their floors (``nuat.bench.plot``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from nuat.bench.timing import attack_step_ratio, target_window
from nuat.bench.variants import parse_variant
from nuat.errors import UsageError

#: the files ``write`` makes beside each other; ``--out`` may name one of them
REPORT_SUFFIXES = (".json", ".md", ".png")

PASS_LABELS = {
    "forward": "forward (f)",
    "forward_input_backward": "forward + input backward",
    "forward_full_backward": "forward + full backward",
    "optimizer_step": "optimiser step",
}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _ms(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{1e3 * x:.2f}"


def _ratio(s: dict[str, float] | None, spread: bool = True) -> str:
    if not s or not math.isfinite(s.get("median", math.nan)):
        return ""
    text = f"{s['median']:.2f}"
    return f"{text} ({s['q1']:.2f}-{s['q3']:.2f})" if spread else text


def _memory(peak: dict[str, int] | None) -> str:
    if not peak:
        return "n/a"
    return f"{peak['peak_bytes'] / 2**20:.0f} (+{peak['above_start_bytes'] / 2**20:.0f})"


def markdown(result: dict[str, Any], *, title: str = "nuat bench", notes: list[str] | None = None,
             figure: str | None = None) -> str:
    """The human-readable report: provenance, pass times, per-method times against ERM and floor;
    ``figure``: file name of the PNG beside the report, shown under the provenance."""
    cfg, env = result["config"], result["environment"]
    lines = [f"# {title}", ""]
    lines += [
        f"- {cfg['dataset']}, `{cfg['model']}`, batch {cfg['batch_size']}, eps {cfg['eps']:.4g}; "
        f"{_count(cfg['trials'], 'interleaved trial')} x {_count(cfg['steps'], 'iteration')} after "
        f"{_count(cfg['warmup'], 'warm-up iteration')}",
        f"- machine: {env['machine']}; device {env['device']}",
        f"- torch threads {env['torch_threads']}; commit `{env['commit']}`; {result['created']}",
        f"- load average (1/5/15 min) before: {env['load_average_before']}, after: {env['load_average_after']}",
    ]
    if result.get("command"):
        lines.append(f"- command: `{result['command']}`")
    for note in notes or []:
        lines.append(f"- {note}")
    if figure:
        lines += ["", f"![time per iteration of each method against its floor]({figure})"]
    clock = cfg.get("clock", "wall")
    clock_text = ("Clock: process CPU time (all threads of the bench process), which leaves out the time other "
                  "processes held the cores of this shared machine; the wall-clock medians are in the last column "
                  "and in the JSON, and images / s are per wall second." if clock == "cpu"
                  else "Clock: wall time (process CPU time is in the JSON).")
    lines += ["", "Times are medians over trials; ranges in parentheses are the quartiles over trials. Ratios "
              "are taken per trial (all methods run in every trial, interleaved) and then summarised. " + clock_text,
              ""]
    for variant, p in result["passes"].items():
        lines += [f"## Passes ({variant})", "", "| pass | ms | quartiles (ms) | / forward (ratio of medians) |",
                  "|---|---:|---:|---:|"]
        f = p["forward"]["median"]
        for key, label in PASS_LABELS.items():
            s = p[key]
            lines.append(f"| {label} | {_ms(s['median'])} | {_ms(s['q1'])}-{_ms(s['q3'])} | "
                         f"{s['median'] / f:.2f} |")
        b, full = p["input_backward_over_forward"]["median"], p["full_backward_over_forward"]["median"]
        lines += ["", f"Input-only backward b = {b:.2f} forwards, full backward = {full:.2f} forwards (medians over "
                  "trials of (pass - forward) / forward, so not quite the ratios of the medians above). "
                  f"Nominal floors from pass counts (optimiser step excluded): ERM 1 + {full:.2f} = {1 + full:.2f}, "
                  f"NuAT 3 + b + 2 x {full:.2f} = {3 + b + 2 * full:.2f} ({(3 + b + 2 * full) / (1 + full):.2f}x ERM), "
                  f"PGD-10 10 (1 + b) + 1 + {full:.2f} = {10 * (1 + b) + 1 + full:.2f} "
                  f"({(10 * (1 + b) + 1 + full) / (3 + b + 2 * full):.2f}x NuAT).", ""]
        lines[-1:-1] = _window(result, p)
    multi = len(cfg["variants"]) > 1
    head = ["method"] + (["variant"] if multi else []) + [
        "passes F / B_in / B_full", "ms / iteration", "images / s", "x ERM", "x NuAT", "floor ms",
        "measured / floor", "floor x ERM", f"peak MiB ({result['environment']['memory_kind']}; +rise in one iteration)"]
    if multi:
        head.insert(-1, "speed-up vs fp32")
    if clock == "cpu":
        head.append("wall ms")
    lines += ["## Methods", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in result["methods"]:
        s = m["seconds_per_iteration"]
        passes = " / ".join(f"{p:g}" for p in m["passes_per_example"])
        row = [m["method"]] + ([m["variant"]] if multi else []) + [
            passes, f"{_ms(s['median'])} ({_ms(s['q1'])}-{_ms(s['q3'])})", f"{m['images_per_s']:.0f}",
            _ratio(m.get("relative_to_erm")), _ratio(m.get("relative_to_nuat")), _ms(m["floor_seconds"]["median"]),
            _ratio(m["measured_over_floor"]), _ratio(m.get("floor_relative_to_erm"), spread=False)]
        if multi:
            row.append(_ratio(m.get("speedup_over_fp32")))
        row.append(_memory(m["peak_memory"]))
        if clock == "cpu":
            row.append(_ms(m["seconds_per_iteration_wall"]["median"]))
        lines.append("| " + " | ".join(row) + " |")
    lines += _graph_memory_note(result)
    lines += _checks(result)
    syncs = [m for m in result["methods"] if "host_syncs_per_iteration" in m]
    if syncs:
        lines += ["", "Host synchronisations per iteration (CUDA sync debug mode; calling lines where recorded): "
                  + ", ".join(_host_syncs(m) for m in syncs)]
    reads = [m for m in result["methods"] if "host_reads_per_iteration" in m]
    if reads:
        lines += ["", "Host reads per iteration (operators that wait for a value from the device, "
                  "nuat.bench.host_reads): " + "; ".join(_host_reads(m) for m in reads)]
    lines += _host_counters(result, multi)
    if any(not m["loss_finite"] for m in result["methods"]):
        lines += ["", "**Warning:** a non-finite training loss occurred in: " + ", ".join(
            f"{m['method']}/{m['variant']}" for m in result["methods"] if not m["loss_finite"])]
    from nuat.bench import profile

    profiled = profile.markdown_section(result["methods"])
    if profiled:
        lines += [""] + profiled
    if result.get("nuclear"):
        from nuat.bench.nuclear import markdown_section

        lines += [""] + markdown_section(result["nuclear"])
    if result.get("loader"):
        from nuat.bench import loader

        lines += [""] + loader.markdown_section(result["loader"], result["methods"])
    return "\n".join(lines) + "\n"


def _host_syncs(m: dict[str, Any]) -> str:
    """``erm/fp32 0.50 (nuat/train/loop.py:160 _step 0.50)``; reports before the sites were
    recorded give the total alone."""
    sites = ", ".join(f"{site} {count:.2f}" for site, count in m.get("host_sync_sites", {}).items())
    return f"{m['method']}/{m['variant']} {m['host_syncs_per_iteration']:.2f}" + (f" ({sites})" if sites else "")


def _host_reads(m: dict[str, Any]) -> str:
    """``nuat/fp32 1.50 (solver _linalg_svd at nuat/losses.py:157 ... 1.50)``: total, then each site."""
    sites = ", ".join(f"{site} {count:.2f}" for site, count in m["host_reads"].items())
    return f"{m['method']}/{m['variant']} {m['host_reads_per_iteration']:.2f}" + (f" ({sites})" if sites else "")


def _host_counters(result: dict[str, Any], multi: bool) -> list[str]:
    """The page-fault / system-time line (reports from before these were recorded have none)."""
    counted = [m for m in result["methods"] if "minor_faults_per_iteration" in m]
    if not counted:
        return []
    names = [m["method"] + (f"/{m['variant']}" if multi else "") for m in counted]
    kept = result["environment"].get("cpu_memory_kept")
    kept_text = "" if kept is None else (
        f" glibc keeps freed memory mapped: {'yes' if kept else 'no'} (`nuat train` sets it on the CPU; "
        "`NUAT_KEEP_FREED_MEMORY=0` leaves malloc alone).")
    faults = ", ".join(f"{n} {m['minor_faults_per_iteration']:.0f}" for n, m in zip(names, counted))
    system = ", ".join(f"{n} {_ms(m['system_seconds_per_iteration'])} ms" for n, m in zip(names, counted))
    return ["", f"Host, per timed iteration (getrusage of the bench process): minor page faults {faults}; "
            f"system CPU time {system}.{kept_text}"]


#: targets of the speed issue (docs/speed.md), per device kind. On both, NuAT within 10% of its
#: floor (the issue asks it of the measured iteration, on any device). CPU (small-cnn, batch 128):
#: NuAT <= 3.3x ERM, PGD-AT (10 steps) >= 3.5x NuAT. GPU (ResNet-18, batch 512): NuAT <= 2.8x ERM
#: and PGD-AT >= 2.8x NuAT, and >= 10,000 NuAT images/s with the fast flags (checked for every
#: variant; the issue asks it of the fast path).
CHECKS = {
    "cpu": (("nuat", "measured_over_floor", "<=", 1.10, "NuAT measured / floor"),
            ("nuat", "relative_to_erm", "<=", 3.3, "NuAT / ERM"),
            ("pgd-at", "relative_to_nuat", ">=", 3.5, "PGD-AT / NuAT")),
    "cuda": (("nuat", "measured_over_floor", "<=", 1.10, "NuAT measured / floor"),
             ("nuat", "relative_to_erm", "<=", 2.8, "NuAT / ERM"),
             ("pgd-at", "relative_to_nuat", ">=", 2.8, "PGD-AT / NuAT"),
             ("nuat", "images_per_s", ">=", 10000, "NuAT images / s")),
}


def _kind(result: dict[str, Any]) -> str:
    return "cuda" if str(result.get("environment", {}).get("device", "cpu")).startswith("cuda") else "cpu"


def _window(result: dict[str, Any], passes: dict[str, Any]) -> list[str]:
    """One sentence under a variant's passes: r = fi / ff against the window in which the two
    ratio targets of this device kind hold together at the floors (docs/speed.md)."""
    targets = {label: target for _, _, _, target, label in CHECKS[_kind(result)]}
    a, b = targets["NuAT / ERM"], targets["PGD-AT / NuAT"]
    r = attack_step_ratio({name: passes[name]["median"] for name in ("forward_input_backward",
                                                                     "forward_full_backward")})
    low, high = target_window(a, b)
    inside = "inside" if low <= r <= high else "outside"
    # two decimals where they tell r from the bounds; three where two would round r onto one
    shown = f"{r:.2f}" if min(abs(r - low), abs(r - high)) >= 0.005 else f"{r:.3f}"
    return ["", f"Attack step over training pass r = (forward + input backward) / (forward + full backward) = "
            f"{shown}, {inside} the window {low:.2f} <= r <= {high:.2f} in which NuAT / ERM <= {a:g} and "
            f"PGD-10 / NuAT >= {b:g} hold together at the floors (NuAT / ERM = 2 + r, PGD-10 / NuAT = "
            f"(10 r + 1) / (r + 2), optimiser step left out)."]


def _graph_memory_note(result: dict[str, Any]) -> list[str]:
    """Under CUDA graphs (variant part ``reduce-overhead``) the allocated peak is not the step's
    memory: the graphs replay in pools reserved when they were recorded, and a replay allocates
    nothing. Says so under the table, with the reserved peaks where the JSON has them."""
    if result["environment"].get("memory_kind") != "CUDA allocated":
        return []
    graphs = []
    for m in result["methods"]:
        try:
            if parse_variant(m["variant"]).compile_mode == "reduce-overhead":
                graphs.append(m)
        except UsageError:  # a variant name this version does not know
            continue
    if not graphs:
        return []
    variants = ", ".join(dict.fromkeys(m["variant"] for m in graphs))
    reserved = [f"{m['method']}/{m['variant']} {m['peak_memory']['reserved_bytes'] / 2**20:.0f}"
                for m in graphs if m.get("peak_memory") and "reserved_bytes" in m["peak_memory"]]
    return ["", f"Peak memory of {variants} (CUDA graphs): the allocated peak leaves out the graphs' memory "
            "pools (reserved when they were recorded; a replay allocates nothing), so it is not the step's "
            "memory" + (f"; reserved peak MiB (the pools of every graph recorded so far): {', '.join(reserved)}"
                        if reserved else "") + "."]


def _checks(result: dict[str, Any]) -> list[str]:
    kind = _kind(result)
    rows = []
    for m in result["methods"]:
        for method, key, op, target, label in CHECKS[kind]:
            if m["method"] == method and m.get(key):
                stat = m[key] if isinstance(m[key], dict) else {"median": m[key]}
                value = stat["median"]
                ok = value <= target if op == "<=" else value >= target
                shown = f"{value:.0f}" if value >= 100 else f"{value:.2f}"
                if "q1" in stat:
                    shown += f" ({stat['q1']:.2f}-{stat['q3']:.2f})"
                rows.append(f"| {label} | {m['variant']} | {shown} | {op} {target:g} | {'yes' if ok else 'no'} |")
    if not rows:
        return []
    return ["", f"## Targets ({'GPU' if kind == 'cuda' else 'CPU'})", "",
            "| quantity | variant | median (quartiles) | target | met |", "|---|---|---:|---:|---|", *rows]


def write_report(result: dict[str, Any], json_path: Path, *, title: str = "nuat bench",
                 notes: list[str] | None = None) -> tuple[Path, str, Path | None]:
    """Write the report and the figure of ``result`` beside ``json_path`` (``.md``, ``.png`` where
    matplotlib is installed); returns the report's path, its text and the figure's path (None
    when none was drawn). The text is built before anything is written, so a malformed result
    leaves no file behind."""
    from nuat.bench.plot import plot_bench

    png_path = json_path.with_suffix(".png")
    text = markdown(result, title=title, notes=notes, figure=png_path.name)
    figure = plot_bench(result, png_path, title=title)
    if figure is None:
        text = markdown(result, title=title, notes=notes)
    md_path = json_path.with_suffix(".md")
    md_path.write_text(text)
    return md_path, text, figure


def report_stem(out: str | Path) -> Path:
    """``out`` without one of the report suffixes (``mnist-lr0.05`` keeps its dot; ``x.json`` -> ``x``)."""
    out = Path(out)
    return out.with_suffix("") if out.suffix in REPORT_SUFFIXES else out


def write(result: dict[str, Any], out: Path, *, title: str = "nuat bench",
          notes: list[str] | None = None) -> tuple[Path, Path, Path | None]:
    """Write ``<out>.json``, ``<out>.md`` and ``<out>.png`` (``out`` without suffix; one of those
    three suffixes is dropped, any other dot stays: ``mnist-lr0.05`` -> ``mnist-lr0.05.json``);
    returns the JSON, Markdown and figure paths (the figure's None when none was drawn)."""
    out = report_stem(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out.with_name(out.name + ".json")
    result = {**result, "report": {"title": title, "notes": list(notes or [])}}  # for --render
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path, _, figure = write_report(result, json_path, title=title, notes=notes)
    return json_path, md_path, figure
