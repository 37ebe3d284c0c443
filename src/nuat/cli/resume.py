"""``nuat train --resume``: which run folder can be resumed, and the check that the options given
with ``--resume`` agree with the run's saved configuration (docs/reliability.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nuat.cli.checks import check_out
from nuat.errors import UsageError

#: every option's default (filled by ``nuat.cli.train_cmd.add_parser``)
OPTION_DEFAULTS: dict[str, Any] = {}
#: the attribute of the parsed arguments that names the options the command line gave (a set of dests)
_GIVEN = "given_options"


def _recording(action_class: type[argparse.Action]) -> type[argparse.Action]:
    """``action_class`` that also adds its dest to ``namespace.given_options``: an option given
    with its default value (--seed 0) is given all the same."""

    class Recording(action_class):  # type: ignore[valid-type, misc]
        def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
            super().__call__(parser, namespace, values, option_string)
            setattr(namespace, _GIVEN, {*getattr(namespace, _GIVEN, ()), self.dest})

    return Recording


#: options that are not part of the saved configuration, or that a resume takes from the command line
#: (--data-dir says where the data are, not what the run is: data that moved can still be resumed)
_NOT_COMPARED_ON_RESUME = {"resume", "device", "no_progress", "data_dir", "overwrite", "run", "command"}
#: options saved in config.json under their own name with the value the command line gave
_SAVED_AS_GIVEN = {"dataset", "model", "method", "epochs", "batch_size", "lr", "seed", "data_dir", "val_per_class",
                   "train_limit", "final_eval", "save_every", "on_collapse", "nuclear_backend"}
_HPARAM_OPTIONS = {"alpha": "alpha", "step_size": "step_size", "attack_steps": "steps", "beta": "beta",
                   "awp_gamma": "gamma", "awp_warmup": "warmup_fraction", "clean_weight": "clean_weight",
                   "switch_threshold": "switch_threshold", "nuclear_group_size": "nuclear_group_size"}


def record_given_options(parser: argparse.ArgumentParser) -> None:
    """Make every option of ``parser`` add its dest to ``namespace.given_options`` when the command
    line gives it (argparse itself cannot tell ``--seed 0`` from no ``--seed``)."""
    for kind in (None, "store", "store_true"):
        parser.register("action", kind, _recording(parser._registry_get("action", kind)))


def unfinished(folder: Path) -> bool:
    """A run directory whose training state exists but whose summary was never written."""
    return (folder / "config.json").is_file() and (folder / "state").is_dir() and not (folder / "summary.json").exists()


def resumed_config(folder: Path, args: argparse.Namespace):
    """The saved, fully resolved configuration of the run in ``folder`` (progress/device from the CLI)."""
    from nuat.train.config import load_run_config

    if (folder / "config.json").is_file() and (folder / "summary.json").exists():
        raise UsageError(f"--resume {folder}: that run is finished (it has its summary.json); evaluate it with "
                         f"'nuat eval {folder}', or train again in another --out")
    if not unfinished(folder):
        raise UsageError(f"--resume {folder}: no unfinished run there (needs config.json and state/, no summary.json)")
    check_out(folder, "--resume")
    moved = {} if args.data_dir is None else {"data_dir": args.data_dir}
    saved = load_run_config(folder / "config.json", out=str(folder), progress=not args.no_progress,
                            device=args.device, **moved)
    check_same_options(args, saved, folder)
    return saved


def _option_value(cfg: Any, dest: str) -> Any:
    """What option ``dest`` set in ``cfg`` (a :class:`TrainConfig`)."""
    if dest in _HPARAM_OPTIONS:  # one the run did not set has the method's default (nuat-h: threshold 0.6)
        from nuat.methods import get_method

        return {**get_method(cfg.method).hparams, **cfg.method_hparams}.get(_HPARAM_OPTIONS[dest])
    if dest == "wa":
        return cfg.method
    if dest == "tau":
        return cfg.averages.get("ema"), cfg.scale_averages
    if dest == "out":  # the same folder however spelled (RUN/, ./RUN)
        return Path(cfg.out).expanduser().resolve()
    if dest == "fast":
        return cfg.amp, cfg.channels_last, cfg.compile, cfg.method_hparams.get("nuclear_group_size")
    return getattr(cfg, dest)


def check_same_options(args: argparse.Namespace, saved: Any, folder: Path) -> None:
    """A resume continues the run as saved in its config.json: an option given on the command line
    that would configure it differently is refused (one line), not silently ignored."""
    from nuat.cli import train_cmd  # it imports this module

    given_options = getattr(args, _GIVEN, None)  # None (arguments not from the parser): those off their default
    given = [k for k, v in vars(args).items()
             if k in OPTION_DEFAULTS and k not in _NOT_COMPARED_ON_RESUME
             and (k in given_options if given_options is not None else v != OPTION_DEFAULTS[k])]
    if not given:
        return
    # the options not given take the saved values, so that each given one is resolved in the run's context
    context = {k: getattr(saved, k) for k in OPTION_DEFAULTS if k not in given and k in _SAVED_AS_GIVEN}
    if "lr_drops" not in given:  # --lr-up/--lr-down are checked against the run's LR shape
        from nuat.methods import get_method

        if saved.lr_drops != get_method(saved.method).defaults.train_fields()["lr_drops"]:
            context["lr_drops"] = ",".join(map(repr, saved.lr_drops)) or "none"
    wanted = train_cmd.resolve_config(argparse.Namespace(**{**vars(args), **context}), fresh=False)
    differ = [k for k in given if _option_value(wanted, k) != _option_value(saved, k)]
    if differ:
        show = lambda v: "the method's default" if v is None else v  # noqa: E731
        flags = ", ".join(f"--{k.replace('_', '-')}" + (f" (saved: {show(_option_value(saved, k))})"
                                                          if k not in ("tau", "fast") else "") for k in differ)
        raise UsageError(f"--resume {folder} continues the run as saved in its config.json, but the command line "
                         f"changes {flags}; only --device, --no-progress and --data-dir may change on resume "
                         f"(start a new run in another --out to change the others)")
