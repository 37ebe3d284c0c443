"""The fully resolved configuration of a training run (written to ``config.json``)."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nuat.errors import UsageError
from nuat.losses import NUCLEAR_BACKENDS
from nuat.projections import parse_eps
from nuat.train.device import resolve_device
from nuat.train.ema import PUBLISHED_STEPS
from nuat.train.fastpath import AMP_MODES, COMPILE_MODES


@dataclass
class TrainConfig:
    """Every setting of a run. Units: eps and alpha in pixels of [0, 1] images; fractions of
    the run for the LR shape and the lambda ramp; ``lr`` is the peak learning rate."""

    dataset: str
    model: str
    method: str
    eps: float
    epochs: int
    batch_size: int
    lr: float
    seed: int = 0
    data_dir: str | None = None
    out: str = "runs/run"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lam_max: float = 0.0
    ramp_fraction: float = 1.0
    #: [fraction of the run, factor]: lambda x factor from that epoch on (GAT); None: no boost
    lam_boost: list[float] | None = None
    lr_up: float = 0.4
    lr_down: float = 0.5
    #: fractions of the run at which the LR is divided by 10 (a constant-then-step schedule, per
    #: epoch: ``nuat.train.schedules.step_lr``); empty: the cyclic-step shape of lr_up / lr_down
    lr_drops: list[float] = field(default_factory=list)
    averages: dict[str, float] = field(default_factory=dict)
    #: True: ``averages`` hold the published taus, rescaled to this run's length (see
    #: ``nuat.train.ema.tau_for_run``); False: used as given (``--tau``).
    scale_averages: bool = True
    #: optimiser steps of the published run the taus belong to (the method's ``tau_steps``)
    tau_steps: int = PUBLISHED_STEPS
    method_hparams: dict[str, Any] = field(default_factory=dict)
    val_per_class: int = 100
    val_steps: int = 7
    train_limit: int | None = None
    final_eval: int = 1000
    device: str = "auto"
    progress: bool = True
    #: also save the full training state every N optimiser steps (0: only at epoch ends)
    save_every: int = 0
    #: what to do on catastrophic overfitting: "warn" or "rollback" (redo the epoch with the remedy)
    on_collapse: str = "warn"
    #: fast path (docs/speed.md), all off by default (the faithful float32 step): bf16 autocast of
    #: the forward passes ("off" or "bf16"), channels_last memory format, torch.compile
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    #: torch.compile's mode (``fastpath.COMPILE_MODES``; "reduce-overhead": CUDA graphs)
    compile_mode: str = "default"
    #: how the nuclear norm's singular values are computed (``nuat.losses.NUCLEAR_BACKENDS``);
    #: the same value and gradient up to rounding, only the speed differs
    nuclear_backend: str = "auto"

    def validate(self) -> "TrainConfig":
        """Raise :class:`UsageError` (one line) on any out-of-range value."""
        self.eps = parse_eps(self.eps)
        positive_ints = {"epochs": self.epochs, "batch_size": self.batch_size, "val_steps": self.val_steps}
        for name, value in positive_ints.items():
            if not isinstance(value, int) or value <= 0:
                raise UsageError(f"--{name.replace('_', '-')} {value!r} is invalid; it must be a positive integer")
        if self.val_per_class < 0:
            raise UsageError(f"--val-per-class {self.val_per_class} is invalid; it must be >= 0")
        # isfinite too: an infinite LR or weight trains for a whole epoch before the loss turns non-finite
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UsageError(f"--lr {self.lr!r} is invalid; it must be a positive finite number")
        if not (self.lam_max >= 0 and math.isfinite(self.lam_max)):
            raise UsageError(f"--lam-max {self.lam_max!r} is invalid; it must be a finite number >= 0")
        for name in ("ramp_fraction", "lr_up", "lr_down"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise UsageError(f"--{name.replace('_', '-')} {value!r} is invalid; it must lie in [0, 1]")
        if self.lr_up <= 0 or self.lr_up + self.lr_down > 1.0 + 1e-9:
            raise UsageError(f"--lr-up {self.lr_up} and --lr-down {self.lr_down} are invalid; "
                             "need lr-up > 0 and lr-up + lr-down <= 1")
        drops = list(self.lr_drops)
        if any(not 0.0 < d <= 1.0 for d in drops) or any(a >= b for a, b in zip(drops, drops[1:])):
            raise UsageError(f"--lr-drops {','.join(f'{d:g}' for d in drops)} is invalid; give increasing "
                             "fractions of the run in (0, 1], e.g. 0.71,0.86, or 'none'")
        if self.lam_boost is not None:
            if len(self.lam_boost) != 2 or not 0.0 <= self.lam_boost[0] <= 1.0 \
                    or not 0 < self.lam_boost[1] < math.inf:
                raise UsageError(f"--lam-boost {self.lam_boost!r} is invalid; give FRACTION,FACTOR with the "
                                 "fraction in [0, 1] and a positive finite factor, or 'off'")
        if not isinstance(self.tau_steps, int) or self.tau_steps <= 0:
            raise UsageError(f"tau_steps {self.tau_steps!r} is invalid; it must be a positive integer")
        for name, tau in self.averages.items():
            if not (0.0 <= tau < 1.0):
                raise UsageError(f"tau of average {name!r} is {tau!r}; it must lie in [0, 1)")
        if self.train_limit is not None and self.train_limit <= 0:
            raise UsageError(f"--train-limit {self.train_limit} is invalid; it must be positive")
        if not isinstance(self.save_every, int) or self.save_every < 0:
            raise UsageError(f"--save-every {self.save_every!r} is invalid; it must be an integer >= 0")
        if self.on_collapse not in ("warn", "rollback"):
            raise UsageError(f"--on-collapse {self.on_collapse!r} is invalid; choose one of: warn, rollback")
        if self.amp not in AMP_MODES:
            raise UsageError(f"--amp {self.amp!r} is invalid; choose one of: {', '.join(AMP_MODES)}")
        if self.compile_mode not in COMPILE_MODES:
            raise UsageError(f"--compile-mode {self.compile_mode!r} is invalid; choose one of: {', '.join(COMPILE_MODES)}")
        if self.compile_mode != "default" and not self.compile:
            raise UsageError(f"compile_mode {self.compile_mode!r} needs compile: true (--compile or --fast)")
        if self.nuclear_backend not in NUCLEAR_BACKENDS:
            raise UsageError(f"--nuclear-backend {self.nuclear_backend!r} is invalid; "
                             f"choose one of: {', '.join(NUCLEAR_BACKENDS)}")
        if self.final_eval < 0:
            raise UsageError(f"--final-eval {self.final_eval} is invalid; it must be >= 0")
        resolve_device(self.device)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _json_matches(value: Any, hint: Any) -> bool:
    """Whether a value read from JSON fits a field's type hint (int for float is fine; bool is no
    number; containers are checked element by element)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_json_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        return isinstance(value, int if hint is int else (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, list) and all(_json_matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and _json_matches(v, args[1])
                                               for k, v in value.items())
    return True


def load_run_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """The validated configuration saved in a run's ``config.json`` at ``path``, with ``overrides``
    (e.g. ``out``, ``progress``, ``device`` from the command line) applied.

    Raises :class:`UsageError` (one line naming the file) when the file cannot be read, is not
    JSON, lacks a setting or holds an invalid one; a bad override is reported as itself.
    """
    path = Path(path)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"cannot read the run configuration {path}: {exc}") from None
    if not isinstance(saved, dict):
        raise UsageError(f"the run configuration {path} is not a JSON object")
    fields = dataclasses.fields(TrainConfig)
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in saved]
    if missing:
        raise UsageError(f"the run configuration {path} lacks {', '.join(missing)}; is it a nuat run's config.json?")
    names = {f.name for f in fields}
    hints = typing.get_type_hints(TrainConfig)
    for f in fields:  # a hand-edited file: a wrong type failed later with a traceback or a vague message
        if f.name in saved and f.name != "eps" and not _json_matches(saved[f.name], hints[f.name]):  # eps: parse_eps
            raise UsageError(f"the run configuration {path} is invalid: {f.name} {saved[f.name]!r} is not of "
                             f"type {f.type}")
    cfg = dataclasses.replace(TrainConfig(**{k: v for k, v in saved.items() if k in names}), **overrides)
    if "device" in overrides:
        resolve_device(cfg.device)  # the command line's value: reported without the file's name
    try:
        return cfg.validate()
    except (UsageError, TypeError, ValueError, AttributeError, LookupError) as exc:  # others: a wrong type
        raise UsageError(f"the run configuration {path} is invalid: {exc}") from None
