"""``nuat eval``: robust accuracy of a run directory or checkpoint under a list of attacks.

Writes eval.json, eval.md (accuracy per attack, worst case, seconds, eps, checkpoint hash,
commit) and state.json (per-example results, saved after every batch; a stopped evaluation
started again with the same options resumes and ends with the same numbers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nuat.cli.checks import check_out, data_dir, float_list, seed
from nuat.errors import UsageError


#: targeted-pgd's target classes when --targets is not given (capped at a model's wrong classes)
DEFAULT_TARGETS = 9


def add_target_arguments(p: argparse.ArgumentParser, *, n: int | None = None, batch_size: int = 500) -> None:
    """Arguments shared by ``nuat eval`` and ``nuat sanity``: what to load, data, eps, device;
    ``n`` and ``batch_size`` are the command's defaults (None: the whole test set)."""
    p.add_argument("target", metavar="RUN_DIR|CHECKPOINT",
                   help="run directory of nuat train (best.safetensors, best-ema.safetensors) or a checkpoint file")
    p.add_argument("--model", help="architecture of a plain state dict (e.g. a RobustBench model); needs --dataset")
    p.add_argument("--dataset", help="test set (default: the checkpoint's data set)")
    p.add_argument("--mean", help="per-channel normalisation mean for --model, e.g. 0.4914,0.4822,0.4465")
    p.add_argument("--std", help="per-channel normalisation std for --model")
    p.add_argument("--eps", help="L-inf radius, e.g. 8/255 or 0.1 (default: the checkpoint's training eps)")
    p.add_argument("--data-dir", type=data_dir, help="root holding <dataset>/ folders")
    p.add_argument("--n", type=int, default=n,
                   help=f"use the first N test images (default: {'all' if n is None else n})")
    p.add_argument("--batch-size", type=int, default=batch_size, help=f"images per batch (default: {batch_size})")
    p.add_argument("--seed", type=seed, default=0, help="seed of the attacks' randomness (default: 0)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (drawn only on a terminal anyway)")


def add_parser(sub: Any) -> None:
    from nuat.eval.registry import DEFAULT_ATTACKS, attack_choices

    p = sub.add_parser("eval", help="robust accuracy under attacks, with worst case", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_arguments(p)
    p.add_argument("--attacks", default=DEFAULT_ATTACKS,
                   help=f"comma-separated: {', '.join(attack_choices())} (any step count: pgd-N, ifgsm-N, "
                        f"gama-pgd-N, targeted-pgd-N, nuclear-N); NAME@N runs on the first N images "
                        f"(default: {DEFAULT_ATTACKS})")
    p.add_argument("--out", help="output folder (default: RUN_DIR/eval or <checkpoint folder>/eval-<name>)")
    p.add_argument("--overwrite", action="store_true", help="discard a state of another evaluation in --out")
    g = p.add_argument_group("attack parameters")
    g.add_argument("--pgd-step", help="PGD step: eps/4, eps/10, 0.01, 2/255 (default: eps/10)")
    g.add_argument("--pgd-restarts", type=int, help="random restarts of each PGD run (default: 1)")
    g.add_argument("--pgd-loss", help="ce or margin (default: ce)")
    g.add_argument("--targets", help="target classes of targeted-pgd: a number or 'all' "
                                     "(default: 9, or all wrong classes of a model with fewer)")
    g.add_argument("--nuclear-lam", type=float, help="lambda of the NuAT attack (default: 4.0)")
    g.add_argument("--gama-reference", choices=("start", "clean"),
                   help="start (default): GAMA's guide term compares with the softmax at the random start, as "
                        "published; clean: with the softmax at the clean image")
    p.set_defaults(run=run)


#: the attack parameters, the attack families that read them, and their defaults
ATTACK_OPTIONS = {
    "pgd_step": ("--pgd-step", ("pgd", "targeted-pgd"), "eps/10"),
    "pgd_restarts": ("--pgd-restarts", ("pgd",), 1),
    "pgd_loss": ("--pgd-loss", ("pgd",), "ce"),
    "targets": ("--targets", ("targeted-pgd",), None),
    "nuclear_lam": ("--nuclear-lam", ("nuclear",), 4.0),
    "gama_reference": ("--gama-reference", ("gama-pgd",), "start"),
}


def _fill_attack_options(args: argparse.Namespace) -> list[str]:
    """Fill in the defaults of the attack parameters not given; returns the keys of those given."""
    given = [key for key in ATTACK_OPTIONS if getattr(args, key) is not None]
    for key, (_, _, default) in ATTACK_OPTIONS.items():
        if key not in given:
            setattr(args, key, default)
    return given


def _check_attack_options_apply(args: argparse.Namespace, given: list[str], requests: list[Any]) -> None:
    """Refuse an attack parameter that no listed attack reads (like the other method-specific
    options: not silently ignored)."""
    families = {r.family for r in requests}
    for key in given:
        flag, readers, _ = ATTACK_OPTIONS[key]
        if not families & set(readers):
            raise UsageError(f"{flag} applies to {' and '.join(readers)} attacks; --attacks {args.attacks!r} has none")


@contextlib.contextmanager
def data_dir_hint(args: argparse.Namespace) -> Iterator[None]:
    """Add to a missing-data error the ``--data-dir`` a run directory was trained with: the test data
    is looked for as ``nuat train`` does, not in the run's ``config.json`` (README)."""
    from nuat.errors import DataError

    try:
        yield
    except DataError as exc:
        config = Path(args.target) / "config.json"
        trained = None
        if args.data_dir is None and config.is_file():
            try:
                trained = json.loads(config.read_text()).get("data_dir")
            except (OSError, ValueError, AttributeError):
                trained = None
        if not trained:
            raise
        raise DataError(f"{exc}; this run was trained with --data-dir {trained}: pass it again") from None


#: AutoAttack images above which a CPU evaluation gets a warning (about 0.15-0.75 s an image on
#: one core for the small models of results/eval: 1,000 images took 740 s for the NuAT model)
SLOW_AUTOATTACK_IMAGES = 1000


def _warn_slow_autoattack(args: argparse.Namespace, device: Any) -> None:
    """On a CPU, say before it starts that AutoAttack on many images takes hours, and how to cut it."""
    import warnings

    from nuat.attacks.autoattack import NEEDS_PYAUTOATTACK
    from nuat.errors import RunWarning
    from nuat.eval.registry import parse_attacks

    if device.type != "cpu":
        return
    limit = args.n if args.n is not None else 10**9  # the whole test set when --n is not given
    big = [r for r in parse_attacks(args.attacks, limit) if r.family in NEEDS_PYAUTOATTACK
           and r.n > SLOW_AUTOATTACK_IMAGES]
    if big:
        images = "the whole test set" if args.n is None and all(r.n == limit for r in big) else f"{big[0].n} images"
        warnings.warn(RunWarning(f"AutoAttack ({big[0].name}) on {images} on a CPU can take hours (0.15-0.75 s an "
                                 f"image for small models); --n N or {big[0].name}@N limits it"))


def _eps_text(eps: float) -> str:
    """A checkpoint's eps as text that parses back to the same float: ``0.3`` where 6 significant
    digits say it exactly, ``8/255`` where it is k/255, else all its digits (6 digits alone
    evaluated a slightly smaller ball than the one trained, 0.0313725 for 8/255)."""
    short, k = f"{eps:.6g}", round(eps * 255)
    if float(short) == eps:
        return short
    return f"{k}/255" if k / 255 == eps else repr(float(eps))


def _channel_values(text: str | None, flag: str) -> list[float] | None:
    """``--mean``/``--std``: one number per input channel (the count is checked with the model)."""
    return None if text is None else float_list(text, flag, "give comma-separated numbers, e.g. 0.5,0.5,0.5")


def load_targets(args: argparse.Namespace):
    """(targets, dataset, eps, eps_text, device) from the shared arguments."""
    from nuat.data import get_dataset_spec
    from nuat.eval.targets import resolve_targets
    from nuat.projections import parse_eps
    from nuat.train.device import resolve_device

    device = resolve_device(args.device)
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    if args.n is not None and args.n < 1:
        raise UsageError(f"--n must be positive, got {args.n}")
    if args.eps is not None:
        parse_eps(args.eps, "--eps")
    if args.dataset is not None:
        get_dataset_spec(args.dataset)
    targets = resolve_targets(args.target, model=args.model, dataset=args.dataset,
                              mean=_channel_values(args.mean, "--mean"), std=_channel_values(args.std, "--std"),
                              device=device)
    meta = targets[0].metadata
    dataset = args.dataset or meta.get("dataset")
    if dataset is None:
        raise UsageError(f"{args.target} does not say its data set; pass --dataset")
    if args.dataset and meta.get("dataset") not in (None, args.dataset):
        raise UsageError(f"{args.target} was trained on {meta['dataset']}, not {args.dataset}")
    if args.eps is not None:
        eps_text = args.eps
    elif "eps" in meta:
        eps_text = _eps_text(meta["eps"]) if not isinstance(meta["eps"], str) else meta["eps"]
    else:
        eps_text = get_dataset_spec(dataset).eps
    return targets, dataset, parse_eps(eps_text), eps_text, device


def _default_out(target: str) -> Path:
    path = Path(target)
    return path / "eval" if path.is_dir() else path.parent / f"eval-{path.stem}"


def _target_count(text: str | None, targets: list[Any]) -> int | None:
    """--targets as a count (None: all wrong classes). The default, 9, becomes "all" on a model
    with fewer wrong classes; a number given that exceeds them is refused: a report of "top-20" on
    a 10-class model would only have attacked 9."""
    if text is None:
        fewest = min((t.num_classes for t in targets if t.num_classes is not None), default=None)
        return None if fewest is not None and fewest - 1 < DEFAULT_TARGETS else DEFAULT_TARGETS
    if text == "all":
        return None
    count = int(text)
    for target in targets:
        classes = target.num_classes
        if classes is not None and count > classes - 1:
            raise UsageError(f"--targets {count} is more than the {classes - 1} wrong classes of {target.name} "
                             f"({classes} classes); give at most {classes - 1}, or 'all'")
    return count


def run(args: argparse.Namespace) -> int:
    from nuat.attacks.autoattack import NEEDS_PYAUTOATTACK, require_pyautoattack
    from nuat.eval.evaluate import EvalOptions, evaluate
    from nuat.eval.registry import Settings, build_jobs, check_loss, parse_attacks, parse_step
    from nuat.eval.report import render_markdown
    from nuat.projections import ThreatModelViolation

    given = _fill_attack_options(args)
    if args.pgd_restarts < 1:
        raise UsageError(f"--pgd-restarts must be at least 1, got {args.pgd_restarts}")
    targets_text = None if args.targets is None else args.targets.strip().lower()
    if targets_text not in (None, "all") and (not targets_text.isdecimal() or int(targets_text) < 1):
        raise UsageError(f"--targets {args.targets!r} must be a positive number or 'all'")
    # a negative lambda would reward staying close to f(X): a weaker attack; an infinite one, a nan loss
    if not 0 <= args.nuclear_lam < math.inf:
        raise UsageError(f"--nuclear-lam {args.nuclear_lam:g} is invalid; it must be a finite number >= 0 "
                         f"(default 4.0)")
    requests = parse_attacks(args.attacks, 1)  # names are checked before anything is loaded
    _check_attack_options_apply(args, given, requests)
    targeted = any(r.family == "targeted-pgd" for r in requests)  # --targets is its option
    needs_package = next((r.family for r in requests if r.family in NEEDS_PYAUTOATTACK), None)
    if needs_package is not None:
        require_pyautoattack(f"attack '{needs_package}'")  # before any attack runs or anything is written
    out = check_out(args.out) if args.out is not None else None  # an empty one is refused
    targets, dataset, eps, eps_text, device = load_targets(args)
    _warn_slow_autoattack(args, device)
    target_count = _target_count(targets_text, targets) if targeted else DEFAULT_TARGETS
    if out is None:  # once the target is known to exist: its folder holds the default
        out = check_out(_default_out(args.target), "the default --out")
    settings = Settings(eps=eps, pgd_step=parse_step(args.pgd_step, eps), pgd_restarts=args.pgd_restarts,
                        pgd_loss=check_loss(args.pgd_loss), targets=target_count,
                        nuclear_lam=args.nuclear_lam, seed=args.seed, gama_reference=args.gama_reference)
    build_jobs(requests, settings)
    options = EvalOptions(attacks=args.attacks, dataset=dataset, settings=settings, eps_text=eps_text, n=args.n,
                          batch_size=args.batch_size, seed=args.seed, data_dir=args.data_dir, device=str(device),
                          progress=not args.no_progress)
    several = len(targets) > 1 or Path(args.target).is_dir()
    tables = []
    for target in targets:
        folder = out / target.name if several else out
        try:
            with data_dir_hint(args):
                result = evaluate(target, options, folder, fresh=args.overwrite)
        except ThreatModelViolation as exc:
            sys.stderr.write(f"nuat eval: error: threat model violation ({target.name}): {exc}\n")
            return 1
        tables.append(render_markdown(result))
        print(f"wrote {folder / 'eval.json'} and {folder / 'eval.md'}", file=sys.stderr)
    text = "\n".join(tables)
    if several:
        from nuat.checkpoints import atomic_write_text

        atomic_write_text(out / "eval.md", text)
    print(text)
    return 0
