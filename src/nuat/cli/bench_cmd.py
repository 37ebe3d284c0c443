"""``nuat bench``: time training methods (and the passes they are made of) in one process.

Writes ``<out>.json`` and ``<out>.md`` and prints the Markdown report. See docs/speed.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nuat.cli.checks import check_out, data_dir, seed
from nuat.errors import UsageError

DEFAULT_METHODS = "erm,nuat,nuat-wa,pgd-at,trades"
#: where a report goes without --out: a scratch folder (git ignores runs/). It was benchmarks/, where
#: a quick try silently replaced a committed report of the same shape
DEFAULT_OUT_ROOT = "runs/bench"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="time training methods and passes", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated methods (default: {DEFAULT_METHODS})")
    p.add_argument("--dataset", default="mnist", help="data set (default: mnist)")
    p.add_argument("--model", help="architecture (default: the data set's recipe)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the data set's recipe)")
    p.add_argument("--eps", help="L-inf radius (default: the data set's recipe)")
    p.add_argument("--steps", type=int, default=20, help="timed iterations per trial (default 20)")
    p.add_argument("--trials", type=int, default=10, help="interleaved trials (default 10)")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations per method first (default 5)")
    p.add_argument("--variants", default="fp32",
                   help="comma-separated variants, each names joined by '+': fp32, bf16, channels-last, compile, "
                        "groupN (nuclear-norm group size N), fast (= bf16+channels-last+compile+group64), "
                        "reduce-overhead (compile in torch.compile's CUDA-graph mode, e.g. fast+reduce-overhead), "
                        "nuclear-B (nuclear-norm backend B: svd, gram, newton-schulz, host-svd); "
                        "default fp32 (the faithful step)")
    p.add_argument("--nuclear", action="store_true", help="also time the nuclear-norm backends")
    p.add_argument("--loader", action="store_true",
                   help="also time the training data loader alone (file data sets: per decode-thread count)")
    p.add_argument("--decode-threads", metavar="N[,N...]",
                   help="with --loader on file data sets: decode-thread counts to time besides 1 and the default")
    p.add_argument("--check-syncs", action="store_true",
                   help="count host reads per iteration (operators that wait for a device value; any device) "
                        "and, on CUDA, host synchronisations")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, profile N more iterations of each method (torch.profiler): device busy "
                        "time and kernels on CUDA, ATen calls, top operators (default 0: off)")
    p.add_argument("--data-dir", type=data_dir, help="root holding <dataset>/ folders")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, help="torch CPU threads, 1 to the machine's cores (default: torch's)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="clock of the summaries: wall (default) or cpu (process CPU time: on a shared CPU machine it "
                        "leaves out time other processes held the cores; use with --threads 1). Both are recorded")
    p.add_argument("--seed", type=seed, default=0, help="seed of the weights, data order and attacks (default: 0)")
    p.add_argument("--out", help="output path without suffix (default: "
                   "runs/bench/<cpu|gpu>/<dataset>-<model>-b<batch>; the committed reports under benchmarks/ are "
                   "written with an explicit --out)")
    p.add_argument("--title", help="heading of the Markdown report (default: nuat bench; --render: the saved one)")
    p.add_argument("--note", action="append", default=[],
                   help="a line to add to the report (repeatable; --render: replaces the saved ones)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--render", metavar="JSON",
                   help="time nothing: rewrite the Markdown report and figure beside a saved <out>.json")
    p.set_defaults(run=run)


def parse_counts(text: str | None) -> tuple[int, ...]:
    """``"2,4"`` -> (2, 4); None -> ()."""
    if text is None:
        return ()
    parts = [v.strip() for v in text.split(",")]
    if not all(v.isdigit() and int(v) >= 1 for v in parts):
        raise UsageError(f"--decode-threads {text!r} is invalid; give positive integers, e.g. 2,4")
    return tuple(int(v) for v in parts)


def render(path: str, title: str | None, notes: list[str]) -> int:
    """Rebuild ``<out>.md`` and ``<out>.png`` from ``<out>.json`` with the current report code. A
    ``title`` or ``notes`` given replace the saved ones in the JSON too, so that the JSON alone
    rebuilds the report again (the measurements in it are left as they are)."""
    import json

    from nuat.bench.report import write_report
    from nuat.checkpoints import atomic_write_text

    json_path = Path(path)
    try:
        result = json.loads(json_path.read_text())
        if not isinstance(result, dict) or not isinstance(result.get("report", {}), dict):
            raise ValueError("the file holds no bench result object")
        saved = result.get("report", {})  # the run's title and notes (older JSON files have none)
        report = {"title": title or saved.get("title", "nuat bench"), "notes": list(notes or saved.get("notes", []))}
        new_json = None
        if (title or notes) and report != saved:
            result["report"] = report
            new_json = json.dumps(result, indent=2) + "\n"
        md_path, text, figure = write_report(result, json_path, title=report["title"], notes=report["notes"])
        if new_json is not None:  # after the report was built: a malformed result changes no file
            atomic_write_text(json_path, new_json)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--render {path}: not a readable nuat bench JSON ({type(exc).__name__}: {exc})") from None
    print(text, end="")
    print(f"wrote {md_path}" + (f" and {figure}" if figure else ""))
    return 0


def run(args: argparse.Namespace) -> int:
    from nuat.bench import BenchConfig, parse_variants, run_bench
    from nuat.bench.report import REPORT_SUFFIXES, report_stem, write
    from nuat.train.device import resolve_device

    if args.render is not None:
        if not args.render.strip():  # e.g. --render "$UNSET": not a request to time everything
            raise UsageError("--render is empty; give a saved <out>.json")
        return render(args.render, args.title, args.note)
    methods = [m.strip() for m in args.methods.split(",")]
    if not all(methods):  # "erm,,nuat" or a trailing comma: a name was probably lost, so say so
        raise UsageError(f"--methods {args.methods!r} has an empty entry; give names separated by single commas, "
                         "e.g. erm,nuat")
    cfg = BenchConfig(methods=methods, dataset=args.dataset, model=args.model, batch_size=args.batch_size,
                      eps=args.eps, steps=args.steps, trials=args.trials, warmup=args.warmup,
                      variants=parse_variants(args.variants), data_dir=args.data_dir, device=args.device,
                      seed=args.seed, threads=args.threads, check_syncs=args.check_syncs,
                      clock=args.clock, profile=args.profile)
    cfg.validate()  # the device too, before any work
    device = resolve_device(cfg.device)
    decode_threads = parse_counts(args.decode_threads)
    if decode_threads and not args.loader:
        raise UsageError("--decode-threads applies with --loader")
    out = None
    if args.out is not None:  # "~" expanded as checked; the files write() will make are checked too
        out = check_out(str(report_stem(args.out)) if args.out.strip() else args.out, prefix=True,
                        suffixes=REPORT_SUFFIXES)
    if out is None:  # the default's folder; the file name (model, batch size) is known after the run
        check_out(Path(DEFAULT_OUT_ROOT, "gpu" if device.type == "cuda" else "cpu", "bench"), "the default --out",
                  prefix=True)
    log = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    result = run_bench(cfg, log=log)
    if args.nuclear:
        from nuat.bench.nuclear import bench_nuclear
        from nuat.data import get_dataset_spec

        classes = get_dataset_spec(cfg.dataset).num_classes or 10
        rows = result["config"]["batch_size"]
        log(f"bench: nuclear-norm backends on {rows} x {classes}")
        result["nuclear"] = bench_nuclear(rows, classes, device=device,
                                          group_sizes=(None, 64), trials=max(cfg.trials, 5), clock=cfg.clock)
    if args.loader:
        from nuat.bench.loader import bench_loader

        result["loader"] = bench_loader(cfg.dataset, batch_size=result["config"]["batch_size"],
                                        device=device, data_dir=cfg.data_dir,
                                        batches=cfg.steps, trials=cfg.trials, seed=cfg.seed,
                                        decode_threads=decode_threads, log=log)
    if out is None:
        kind = "gpu" if result["environment"]["device"].startswith("cuda") else "cpu"
        c = result["config"]
        out = f"{DEFAULT_OUT_ROOT}/{kind}/{c['dataset']}-{c['model']}-b{c['batch_size']}"
    json_path, md_path, figure = write(result, Path(out), title=args.title or "nuat bench", notes=args.note)
    print(md_path.read_text(), end="")
    print(f"wrote {json_path}, {md_path}" + (f" and {figure}" if figure else ""))
    return 0
