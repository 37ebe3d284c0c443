"""``nuat sanity``: the gradient-masking checks of Athalye et al. (2018), each PASS or FLAG.

Iterative vs single-step, white-box vs black-box (Square), accuracy vs eps, unbounded attack,
more steps and restarts, smoothness of the loss (with a loss-surface plot). Writes sanity.json,
sanity.md and loss_surface.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nuat.cli.checks import check_out
from nuat.errors import UsageError


#: exit code when a check flags (the reports are written all the same)
EXIT_FLAGGED = 4


def add_parser(sub: Any) -> None:
    from nuat.cli.eval_cmd import add_target_arguments

    p = sub.add_parser("sanity", help="gradient-masking checks (PASS/FLAG)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_arguments(p, n=500, batch_size=250)
    p.add_argument("--square-queries", type=int, default=1000, help="Square Attack query budget (default: 1000)")
    p.add_argument("--surface-images", type=int, default=100, help="images for the smoothness numbers (default: 100)")
    p.add_argument("--out", help="output folder (default: RUN_DIR/sanity or <checkpoint folder>/sanity-<name>)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nuat.attacks.autoattack import require_pyautoattack
    from nuat.cli.eval_cmd import data_dir_hint, load_targets
    from nuat.data import check_classes
    from nuat.eval.sanity import SanityConfig, render_sanity, run_sanity
    from nuat.eval.targets import load_test_data
    from nuat.projections import ThreatModelViolation

    for flag, value in (("--square-queries", args.square_queries), ("--surface-images", args.surface_images)):
        if value < 1:
            raise UsageError(f"{flag} must be positive, got {value}")
    require_pyautoattack("the white-box vs black-box check (Square Attack)")
    path = Path(args.target)
    out = check_out(args.out) if args.out is not None else None  # an empty one is refused
    targets, dataset, eps, eps_text, device = load_targets(args)
    if out is None:  # once the target is known to exist: its folder holds the default
        default = path / "sanity" if path.is_dir() else path.parent / f"sanity-{path.stem}"
        out = check_out(default, "the default --out")
    with data_dir_hint(args):
        data = load_test_data(dataset, args.data_dir, targets, progress=not args.no_progress)
    for target in targets:
        check_classes(data, target.metadata.get("classes"), str(target.path))
    if args.n > len(data):
        raise UsageError(f"--n {args.n} is larger than the {dataset} test set ({len(data)})")
    cfg = SanityConfig(eps=eps, n=args.n, batch_size=args.batch_size, seed=args.seed,
                       square_queries=args.square_queries, surface_images=args.surface_images, device=str(device),
                       progress=not args.no_progress)
    several = len(targets) > 1 or path.is_dir()
    flagged: list[str] = []
    for target in targets:
        folder = out / target.name if several else out
        try:
            result = run_sanity(target, data, cfg, folder, dataset=dataset, eps_text=eps_text)
        except ThreatModelViolation as exc:
            sys.stderr.write(f"nuat sanity: error: threat model violation ({target.name}): {exc}\n")
            return 1
        if result["verdict"] != "PASS":
            flagged.append(target.name)
        print(render_sanity(result))
        figure = f" and {folder / result['plot']}" if result["plot"] else ""
        print(f"wrote {folder / 'sanity.json'}, {folder / 'sanity.md'}{figure}", file=sys.stderr)
    if flagged:  # scripts and CI can tell a flagged model from a clean bill without parsing the report
        print(f"nuat sanity: FLAG ({', '.join(flagged)}): a check points to gradient masking; see sanity.md",
              file=sys.stderr)
        return EXIT_FLAGGED
    return 0
