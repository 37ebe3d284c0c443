"""``nuat train``: train a model with a method on a data set; writes a run directory."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from nuat.cli.checks import check_out, data_dir, float_list, seed
from nuat.cli.resume import OPTION_DEFAULTS, record_given_options, resumed_config, unfinished
from nuat.errors import UsageError
from nuat.losses import NUCLEAR_BACKENDS
from nuat.train.fastpath import AMP_MODES, COMPILE_MODES


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a robust model", description=__doc__)
    record_given_options(p)
    p.add_argument("--dataset", default="fashion-mnist", help="data set name (default: fashion-mnist)")
    p.add_argument("--model", help="architecture (default: the data set's recipe)")
    p.add_argument("--method", default="nuat", help="training method (default: nuat)")
    p.add_argument("--eps", help="L-inf radius in [0, 1] pixels, e.g. 8/255 or 0.3 (default: recipe)")
    p.add_argument("--epochs", type=int, help="training epochs (default: recipe)")
    p.add_argument("--batch-size", type=int, help="images per optimiser step (default: recipe)")
    p.add_argument("--lr", type=float, help="peak learning rate of the cyclic-step schedule (default: recipe)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the weights, data order and attacks (default: 0)")
    p.add_argument("--data-dir", type=data_dir, help="root holding <dataset>/ folders (else $NUAT_DATA, ~/.cache/nuat/data, ...)")
    p.add_argument("--out", help="run directory (default: runs/<dataset>-<method>-seed<seed>)")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --out folder that already holds files: the earlier run's outputs there "
                        "(config.json, metrics.jsonl, curves.png, summary.json, best*/last*.safetensors, state/) "
                        "are deleted first; other files are kept")
    g = p.add_argument_group("method hyperparameters (defaults: the method's published values)")
    g.add_argument("--lam-max", type=float, help="final weight of the regulariser (NuAT nuclear norm, GAT softmax L2)")
    g.add_argument("--ramp-fraction", type=float, help="fraction of the run over which lambda grows from 0")
    g.add_argument("--lam-boost", metavar="FRACTION,FACTOR|off",
                   help="multiply lambda by FACTOR from FRACTION of the run on (gat: 0.86,4 as published; off: none)")
    g.add_argument("--lr-up", type=float, help="cyclic-step LR: fraction of the run for the LR to rise to its peak")
    g.add_argument("--lr-down", type=float, help="cyclic-step LR: fraction of the run for it to fall back to 0")
    g.add_argument("--lr-drops", metavar="F[,F...]|none",
                   help="step LR instead: the peak LR, divided by 10 from each fraction F of the run on "
                        "(gat: 0.71,0.86 as published; none: the cyclic-step shape)")
    g.add_argument("--tau", type=float, help="EMA decay of the weight average (-WA methods), used as given; "
                   "default: the published tau rescaled to this run's length")
    g.add_argument("--alpha", help="random start magnitude: NuAT/GAT Bernoulli noise, R-FGSM random step "
                   "(default eps/2)")
    g.add_argument("--wa", action="store_true", help="also keep a weight average (EMA) as the reported model; "
                   "same as appending -wa to the method name")
    g.add_argument("--attack-steps", type=int, help="attack steps (PGD-AT, TRADES, AWP: default 10; NuAT: 1 or 2)")
    g.add_argument("--step-size", help="attack step in pixels, e.g. 2/255 (default: the method's, relative to eps)")
    g.add_argument("--beta", type=float, help="TRADES weight of the KL term (default 6)")
    g.add_argument("--awp-gamma", type=float, help="AWP relative size of the weight perturbation (default 5e-3)")
    g.add_argument("--awp-warmup", type=float, help="AWP starts in epoch ceil(F x epochs), counted from 1, "
                   "like the authors' awp_warmup (10 of 200 = 0.05); default 0, trades-awp 0.05")
    g.add_argument("--clean-weight", type=float, help="FGSM-AT weight of the clean cross-entropy (default 0.5)")
    g.add_argument("--switch-threshold", type=float, help="hybrid (-H) methods: a batch takes the two-step attack "
                   "when its clean loss is below this times the previous epoch's mean (default 0.6)")
    g.add_argument("--nuclear-group-size", type=int, help="rows per nuclear-norm group (default: whole batch)")
    x = p.add_argument_group("run control")
    x.add_argument("--val-per-class", type=int, default=100,
                   help="held-out validation images per class (default: 100; 0: no validation split, so no collapse "
                        "detection, and the best checkpoint is the last epoch)")
    x.add_argument("--train-limit", type=int, help="train on only the first N images left after the validation split "
                   "(quick runs; the validation split keeps its --val-per-class images)")
    x.add_argument("--final-eval", type=int, default=1000, help="test images for the final PGD-100 check (default: 1000; 0: skip)")
    x.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    x.add_argument("--no-progress", action="store_true", help="no progress bars (drawn only on a terminal anyway)")
    x.add_argument("--resume", metavar="RUN_DIR|auto",
                   help="continue an interrupted run from its newest good state (auto: the --out folder, if it "
                        "holds an unfinished run; otherwise start fresh, which needs --overwrite where "
                        "--out holds files)")
    x.add_argument("--save-every", type=int, default=0, help="also save the full state every N steps (default 0: at epoch ends only)")
    x.add_argument("--on-collapse", default="warn", help="on catastrophic overfitting: warn (default) or rollback")
    f = p.add_argument_group("fast path (GPU; default: the faithful float32 step; see docs/speed.md)")
    f.add_argument("--amp", choices=AMP_MODES, help="bf16 autocast of the forward passes (default off)")
    f.add_argument("--channels-last", action="store_true", help="channels_last memory format for model and batches")
    f.add_argument("--compile", action="store_true", help="run the training passes through torch.compile")
    f.add_argument("--compile-mode", choices=COMPILE_MODES, default="default",
                   help="torch.compile's mode (default: default); reduce-overhead implies --compile and replays the "
                        "compiled passes as CUDA graphs: fewer kernel launches; on a CPU the same as default")
    f.add_argument("--fast", action="store_true", help="--amp bf16 --channels-last --compile "
                   "plus --nuclear-group-size 64 for the NuAT family unless given")
    f.add_argument("--nuclear-backend", choices=NUCLEAR_BACKENDS, default="auto",
                   help="how the nuclear norm's singular values are computed: same value and gradient, "
                        "different speed (default auto: svd on a CPU, gram elsewhere; newton-schulz has no host sync; "
                        "host-svd computes on the host CPU)")
    p.set_defaults(run=run)
    OPTION_DEFAULTS.update(vars(p.parse_args([])))


def parse_lam_boost(text: str | None, default: list[float] | None) -> list[float] | None:
    """``"0.86,4"`` -> [0.86, 4.0]; ``"off"`` -> None; None -> the method's default."""
    if text is None:
        return default
    if text.strip().lower() == "off":
        return None
    expected = "give FRACTION,FACTOR (e.g. 0.86,4) or 'off'"
    values = float_list(text, "--lam-boost", expected)
    if len(values) != 2:
        raise UsageError(f"--lam-boost {text!r} is invalid; {expected}")
    return values


def parse_lr_drops(text: str | None, default: list[float]) -> list[float]:
    """``"0.71,0.86"`` -> [0.71, 0.86]; ``"none"`` -> []; None -> the method's default (the range and
    order are checked by ``TrainConfig.validate``)."""
    if text is None:
        return default
    if text.strip().lower() == "none":
        return []
    return float_list(text, "--lr-drops",
                   "give increasing fractions of the run in (0, 1], e.g. 0.71,0.86, or 'none'")


def resolve_config(args: argparse.Namespace, *, fresh: bool = True):
    """Method defaults < data-set recipe < command line -> a validated :class:`TrainConfig`.

    ``fresh=False``: what the options would configure, without the checks of a fresh run's
    ``--out`` folder (a resume compares it with the saved configuration)."""
    from nuat.data import get_dataset_spec
    from nuat.methods import get_method
    from nuat.methods.registry import WA_SUFFIX
    from nuat.models.registry import check_model_name
    from nuat.projections import parse_eps
    from nuat.train.config import TrainConfig
    from nuat.train.recipes import recipe_for

    spec = get_dataset_spec(args.dataset)
    entry = get_method(args.method)
    if args.wa and "ema" not in entry.defaults.averages:
        args.method += WA_SUFFIX  # --method pgd-at --wa is --method pgd-at-wa
        entry = get_method(args.method)
    args.method = entry.name  # an alias (nuat-h-wa) is recorded under its registered name
    recipe = recipe_for(spec.name)
    d = entry.defaults
    fields = d.train_fields()
    eps = parse_eps(args.eps, "--eps") if args.eps is not None else parse_eps(recipe.get("eps", spec.eps))
    averages = fields["averages"]
    if args.tau is not None:
        if "ema" not in averages:
            raise UsageError(f"--tau applies to weight-averaged methods; {args.method!r} has no average")
        averages["ema"] = args.tau
        scale_averages = False
    else:
        scale_averages = True
    hparams: dict[str, Any] = {}
    pixels = lambda text, flag: None if text is None else parse_eps(text, flag)  # noqa: E731
    for flag, key, value in (("--alpha", "alpha", pixels(args.alpha, "--alpha")),
                             ("--step-size", "step_size", pixels(args.step_size, "--step-size")),
                             ("--attack-steps", "steps", args.attack_steps), ("--beta", "beta", args.beta),
                             ("--awp-gamma", "gamma", args.awp_gamma),
                             ("--awp-warmup", "warmup_fraction", args.awp_warmup),
                             ("--clean-weight", "clean_weight", args.clean_weight)):
        if value is not None:
            if key not in entry.hparams:
                raise UsageError(f"{flag} does not apply to method {args.method!r}")
            hparams[key] = value
    for flag, value in (("--lam-max", args.lam_max), ("--ramp-fraction", args.ramp_fraction),
                        ("--lam-boost", args.lam_boost)):
        if value is not None and d.lam_max == 0:
            raise UsageError(f"{flag} applies to methods with a regulariser weight (nuat*, gat); "
                             f"{args.method!r} has none")
    if args.switch_threshold is not None:
        if entry.hparams.get("switch_threshold") is None:
            raise UsageError(f"--switch-threshold applies to hybrid methods (-h); {args.method!r} is not one")
        # 0 or less never switches and inf always does: the hybrid would silently be plain NuAT or NuAT2
        if not 0 < args.switch_threshold < math.inf:
            raise UsageError(f"--switch-threshold {args.switch_threshold:g} is invalid; it must be positive and finite "
                             f"(a batch switches when its clean loss < threshold x the previous epoch's mean)")
        hparams["switch_threshold"] = args.switch_threshold
    if args.nuclear_group_size is not None:
        if "nuclear_group_size" not in entry.hparams:
            raise UsageError(f"--nuclear-group-size applies to the NuAT family; {args.method!r} has no nuclear norm")
        if args.nuclear_group_size <= 0:
            raise UsageError(f"--nuclear-group-size {args.nuclear_group_size} is invalid; it must be positive")
        hparams["nuclear_group_size"] = args.nuclear_group_size
    elif args.fast and "nuclear_group_size" in entry.hparams:
        from nuat.train.fastpath import FAST_NUCLEAR_GROUP_SIZE

        hparams["nuclear_group_size"] = FAST_NUCLEAR_GROUP_SIZE  # the published M keeps the regulariser's scale
    lr_drops = parse_lr_drops(args.lr_drops, fields["lr_drops"])
    if lr_drops and (args.lr_up is not None or args.lr_down is not None):
        source = "--lr-drops" if args.lr_drops is not None else f"the published schedule of {args.method!r}"
        raise UsageError(f"--lr-up/--lr-down shape the cyclic-step LR, but {source} is a step LR (drops at "
                         f"{','.join(f'{d:g}' for d in lr_drops)}); add --lr-drops none to use the cyclic one")
    pick = lambda cli, key, default: cli if cli is not None else recipe.get(key, default)  # noqa: E731
    out = str(run_folder(args))
    cfg = TrainConfig(
        dataset=spec.name, model=pick(args.model, "model", "resnet18"), method=args.method, eps=eps,
        epochs=pick(args.epochs, "epochs", 100), batch_size=pick(args.batch_size, "batch_size", 64),
        lr=pick(args.lr, "lr", 0.1), seed=args.seed, data_dir=args.data_dir, out=out,
        lam_max=pick(args.lam_max, "lam_max", fields["lam_max"]),
        ramp_fraction=pick(args.ramp_fraction, "ramp_fraction", fields["ramp_fraction"]),
        lam_boost=parse_lam_boost(args.lam_boost, fields["lam_boost"]),
        lr_up=pick(args.lr_up, "lr_up", fields["lr_up"]), lr_down=pick(args.lr_down, "lr_down", fields["lr_down"]),
        lr_drops=lr_drops,
        averages=averages, scale_averages=scale_averages, tau_steps=fields["tau_steps"], method_hparams=hparams,
        val_per_class=args.val_per_class, train_limit=args.train_limit, final_eval=args.final_eval, device=args.device,
        progress=not args.no_progress, save_every=args.save_every, on_collapse=args.on_collapse,
        amp=args.amp or ("bf16" if args.fast else "off"), channels_last=args.channels_last or args.fast,
        compile=args.compile or args.fast or args.compile_mode != "default", compile_mode=args.compile_mode,
        nuclear_backend=args.nuclear_backend,
    )
    cfg.validate()  # the device too: before any work
    try:  # the method's own checks on its hyperparameters (attack steps, beta, ...)
        entry.build(**{**entry.hparams, **hparams})
    except ValueError as exc:
        raise UsageError(f"method {args.method!r}: {exc}") from None
    check_model_name(cfg.model)
    if not fresh:
        return cfg
    out_path = check_out(cfg.out)
    if out_path.is_dir() and any(out_path.iterdir()) and not args.overwrite:
        raise UsageError(f"--out {cfg.out} already holds files; choose another folder or pass --overwrite")
    return cfg


def run_folder(args: argparse.Namespace) -> Path:
    """``--out`` (``~`` expanded), or the default ``runs/<dataset>-<method>-seed<seed>``."""
    from nuat.data import get_dataset_spec

    if args.out is not None and not args.out.strip():  # e.g. --out "$UNSET": not the default folder
        raise UsageError("--out is empty; give a path")
    return Path(args.out or f"runs/{get_dataset_spec(args.dataset).name}-{args.method}-seed{args.seed}").expanduser()


def run(args: argparse.Namespace) -> int:
    import sys

    from nuat.train.loop import StartedRunDataError, TrainingDiverged, TrainingInterrupted, train

    if args.resume is not None and not args.resume.strip():  # e.g. --resume "$UNSET": not a fresh run
        raise UsageError("--resume is empty; give a run directory or 'auto'")
    if args.resume and args.resume != "auto":
        if args.overwrite:  # --resume auto --overwrite is meaningful (start over where no run is unfinished)
            raise UsageError(f"--resume {args.resume} continues that run and --overwrite would delete it; give one "
                             f"of them (or --resume auto --out RUN --overwrite: resume if unfinished, else start over)")
        cfg, resume_run = resumed_config(Path(args.resume).expanduser(), args), True
    elif args.resume == "auto" and unfinished(folder := run_folder(args)):
        cfg, resume_run = resumed_config(folder, args), True
    else:
        cfg, resume_run = resolve_config(args), False
    try:
        train(cfg, resume_run=resume_run)
    except TrainingInterrupted as stop:
        saved = "state saved in" if stop.saved_now else "stopped at once by a second signal; the newest state is in"
        sys.stderr.write(f"nuat train: stopped by signal {stop.signum}; {saved} {cfg.out}/state; "
                         f"resume with: nuat train --resume {cfg.out}\n")
        return 128 + stop.signum
    except StartedRunDataError as exc:  # the run folder holds its start: say how to go on
        raise UsageError(f"{exc}; the run in {exc.out} has started: fix the data, then continue it with "
                         f"nuat train --resume {exc.out}") from None
    except TrainingDiverged as exc:
        sys.stderr.write(f"nuat train: error: training diverged ({exc}); the last good checkpoints and state "
                         f"in {cfg.out} are kept\n")
        return 3
    return 0
