"""FBF, "Fast is better than free" (Wong, Rice & Kolter, ICLR 2020, Algorithm 3 and Sec. 4-5):
FGSM adversarial training from a uniform random start.

``delta ~ U(-eps, eps)`` (image clamped to [0, 1]), one signed step of size alpha = 1.25 eps on
the cross-entropy, projection to the eps-ball and the box, then training on ``CE(f(X + delta), Y)``.
The paper pairs it with a cyclic learning rate (linear up to the peak at 2/5 of the run, linear
down to 0 at the end), which are this method's LR defaults (``lr_up`` 0.4, ``lr_down`` 0.6).
Mixed precision and early stopping on catastrophic overfitting, the paper's other speed-ups, are
not part of the method here (the loop selects the best epoch on validation I-FGSM instead).
"""

from __future__ import annotations

import torch
from torch import nn

from nuat.methods.base import Method, MethodDefaults, StepContext, StepOutput
from nuat.methods.common import adversarial_ce, ce_objective, signed_ascent
from nuat.projections import random_uniform_start

DEFAULTS = MethodDefaults(lr_up=0.4, lr_down=0.6)


class FBF(Method):
    """FBF. Hyperparameter: ``step_size`` (pixels; default 1.25 eps)."""

    def __init__(self, *, step_size: float | None = None) -> None:
        super().__init__(step_size=step_size)
        self.step_size = step_size

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> StepOutput:
        step = 1.25 * ctx.eps if self.step_size is None else self.step_size
        start = random_uniform_start(x, ctx.eps, ctx.generator)
        x_adv = signed_ascent(model, start, x, ce_objective(y), eps=ctx.eps, step_size=step, steps=1)
        loss, sums = adversarial_ce(model, x_adv, y)
        return StepOutput(loss=loss, sums=sums, x_adv=x_adv, passes=(2, 1, 1))
