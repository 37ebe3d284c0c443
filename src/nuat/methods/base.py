"""What a training method is: how it builds the adversarial batch and the loss.

The shared loop (``nuat.train.loop``) owns schedules, optimiser, EMA, checkpoints, validation
and logging. A method implements ``loss`` (and optionally the epoch hooks); adding a method is
one file and one registry entry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nuat.train.ema import PUBLISHED_STEPS


@dataclass
class StepContext:
    """What the loop tells a method about the current iteration.

    ``lam`` is the epoch's lambda (a Python float: no host sync); ``batch_index`` counts from 0
    within the epoch; ``iteration`` counts optimiser steps from 0 over the run; ``eps`` is the
    radius in pixels; ``generator`` is on the training device and is the one source for the
    method's randomness (it is saved with the training state, so a resumed run draws the same
    numbers); ``averages`` maps EMA names to their averaged models (eval mode).
    """

    epoch: int
    epochs: int
    batch_index: int
    iteration: int
    eps: float
    lam: float
    generator: torch.Generator
    averages: dict[str, nn.Module] = field(default_factory=dict)


@dataclass
class StepOutput:
    """A method's loss plus per-batch sums (device tensors, read once per epoch by the loop).

    ``sums`` keys used by the loop: ``loss`` (``loss * M``, read by the loop's divergence check;
    where a method leaves it out, the loop adds it from ``loss``), ``ce`` (sum of clean CE), ``reg``
    (regulariser * M), ``correct_clean``, ``correct_adv`` (a missing one is logged as NaN) and
    ``n`` (the batch size, which the epoch means divide by); a method may add more (all summed
    per epoch). ``x_adv`` (B, C, H, W) is not read by the loop; the tests check it against the
    eps-ball.
    """

    loss: torch.Tensor
    sums: dict[str, torch.Tensor]
    x_adv: torch.Tensor | None = None
    #: passes per training example in this step: (forwards, input-only backwards, full backwards)
    passes: tuple[int, int, int] = (1, 0, 1)


@dataclass
class MethodDefaults:
    """Published defaults that the loop uses: lambda ramp, LR shape (cyclic-step or step drops), EMA taus.

    ``averages`` maps an EMA name to its tau; ``"ema"`` is the reported averaged model (-WA),
    other names are helpers (NuAT2-WA's fast average used for the first attack step).
    ``tau_steps``: optimiser steps of the published run the taus belong to (a run of that length
    gets them exactly; others get them rescaled, :func:`nuat.train.ema.tau_for_run`).
    """

    lam_max: float = 0.0
    ramp_fraction: float = 1.0
    lr_up: float = 0.4
    lr_down: float = 0.5
    averages: dict[str, float] = field(default_factory=dict)
    tau_steps: int = PUBLISHED_STEPS  # the NuAT-WA run
    #: (fraction of the run, factor): lambda is multiplied by factor from that epoch on (GAT)
    lam_boost: tuple[float, float] | None = None
    #: fractions of the run where a published step schedule divides the LR by 10 (GAT); empty:
    #: the cyclic-step shape of ``lr_up`` / ``lr_down``
    lr_drops: tuple[float, ...] = ()

    def train_fields(self) -> dict[str, Any]:
        """These defaults as :class:`nuat.train.config.TrainConfig` fields (JSON-ready copies):
        the one mapping ``nuat train`` (before its command-line overrides) and ``nuat bench`` use."""
        return {"lam_max": self.lam_max, "ramp_fraction": self.ramp_fraction,
                "lam_boost": None if self.lam_boost is None else list(self.lam_boost),
                "lr_up": self.lr_up, "lr_down": self.lr_down, "lr_drops": list(self.lr_drops),
                "averages": dict(self.averages),
                "tau_steps": self.tau_steps}


class Method:
    """Base class. Subclasses set ``name``, ``defaults`` and implement :meth:`loss`."""

    name: str = ""
    summary: str = ""
    #: whether the method trains for robustness (False: no catastrophic-overfitting check)
    adversarial: bool = True
    defaults: MethodDefaults = MethodDefaults()

    def __init__(self, **hparams: Any) -> None:
        self.hparams = dict(hparams)

    # hooks -------------------------------------------------------------------------------
    def start_epoch(self, epoch: int) -> None:
        """Called before the first batch of every epoch."""

    def end_epoch(self, sums: dict[str, float]) -> dict[str, Any]:
        """Called with the epoch's summed stats (host floats); returns extra metrics to log."""
        return {}

    #: what the method does differently for an epoch redone after catastrophic overfitting
    #: (``nuat train --on-collapse rollback``); empty: no remedy.
    remedy: str = ""

    @property
    def has_remedy(self) -> bool:
        return bool(self.remedy)

    def set_remedy(self, on: bool) -> None:
        """Switch the remedy on for a redone epoch, and off afterwards."""

    def after_step(self, model: nn.Module) -> None:
        """Called after the optimiser step (e.g. AWP restores the weights here)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state for full-state checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (on resume)."""

    # the step ------------------------------------------------------------------------------
    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> StepOutput:
        """The training loss of one minibatch, with its statistics.

        ``x``: (B, C, H, W) float32 images in [0, 1] on the training device; ``y``: (B,) int64.
        ``model`` is in train mode (possibly ``torch.compile``-d) and must be left in it; the
        loop calls this under its autocast setting, then ``backward()`` on ``StepOutput.loss``
        (a scalar, a minibatch mean) and the optimiser step, so the method must not. Every nuat
        method attacks in eval mode (:func:`nuat.attacks.eval_mode`, docs/baselines.md) and
        draws its randomness from ``ctx.generator``.
        """
        raise NotImplementedError


def accuracy_sums(logits_clean: torch.Tensor, logits_adv: torch.Tensor | None, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Correct-prediction counts as device tensors (no host sync)."""
    sums = {
        "correct_clean": (logits_clean.detach().argmax(1) == y).sum(),
        "n": torch.full((), y.shape[0], device=y.device, dtype=torch.int64),
    }
    if logits_adv is not None:
        sums["correct_adv"] = (logits_adv.detach().argmax(1) == y).sum()
    return sums


def regularised_sums(logits_clean: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor, *,
                     ce: torch.Tensor, reg: torch.Tensor, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    """``accuracy_sums`` plus the batch sums of a "CE + weight x regulariser" loss's parts (the
    scalars are batch means; ``ce``, ``reg`` and ``loss`` sum over the batch), on the device."""
    m = y.shape[0]
    sums = accuracy_sums(logits_clean, logits_adv, y)
    sums.update(ce=ce.detach() * m, reg=reg.detach() * m, loss=loss.detach() * m)
    return sums


def replace_defaults(defaults: MethodDefaults, **changes: Any) -> MethodDefaults:
    return dataclasses.replace(defaults, **changes)
