"""PGD adversarial training (Madry et al., "Towards Deep Learning Models Resistant to Adversarial
Attacks", ICLR 2018, the saddle-point problem of Eq. 2.1 solved with PGD from a random start).

The attack starts at ``X + U(-eps, eps)`` (clamped to [0, 1]) and takes ``steps`` signed steps on
the cross-entropy, each projected to the eps-ball and the box; the model is trained on
``CE(f(X~), Y)`` alone. Defaults follow the PGD-AT row of the NuAT paper's Table 1 (10 steps, after
Rice et al., 2020) with step eps/4 (2/255 at 8/255). Madry et al. used 7 steps of 2/255 on CIFAR-10
and 40 steps of 0.01 at eps 0.3 on MNIST.

The class also exposes the two halves of a step (:meth:`adversarial_batch`,
:meth:`training_loss`) so that AWP (``awp.py``) can run on top of it without a copy.
"""

from __future__ import annotations

import torch
from torch import nn

from nuat.methods.base import Method, MethodDefaults, StepContext, StepOutput
from nuat.methods.common import adversarial_ce, ce_objective, check_train_attack_steps, signed_ascent
from nuat.projections import random_uniform_start

DEFAULTS = MethodDefaults()
Passes = tuple[int, int, int]


class PGDAT(Method):
    """PGD-AT. Hyperparameters: ``steps`` (default 10), ``step_size`` (pixels; default eps / 4)."""

    def __init__(self, *, steps: int = 10, step_size: float | None = None) -> None:
        super().__init__(steps=steps, step_size=step_size)
        check_train_attack_steps("PGD-AT", steps)
        self.steps = steps
        self.step_size = step_size

    def adversarial_batch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """PGD-``steps`` from a uniform random start: (M, C, H, W) in the eps-ball and [0, 1]."""
        step = ctx.eps / 4 if self.step_size is None else self.step_size
        start = random_uniform_start(x, ctx.eps, ctx.generator)
        return signed_ascent(model, start, x, ce_objective(y), eps=ctx.eps, step_size=step, steps=self.steps)

    def attack_passes(self) -> Passes:
        return (self.steps, self.steps, 0)

    def training_loss(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                      ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor], Passes]:
        """``CE(f(X~), Y)`` in train mode, its per-batch sums and its passes (1 forward, 1 full backward)."""
        loss, sums = adversarial_ce(model, x_adv, y)
        return loss, sums, (1, 0, 1)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> StepOutput:
        x_adv = self.adversarial_batch(model, x, y, ctx)
        loss, sums, passes = self.training_loss(model, x, x_adv, y, ctx)
        total = tuple(a + b for a, b in zip(self.attack_passes(), passes))
        return StepOutput(loss=loss, sums=sums, x_adv=x_adv, passes=total)  # type: ignore[arg-type]
