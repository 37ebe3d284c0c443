"""R-FGSM adversarial training (Tramèr et al., "Ensemble Adversarial Training: Attacks and
Defenses", ICLR 2018, section "A new randomized single-step attack" (R+FGSM)).

The attack takes a random step first, ``X' = X + alpha * sign(N(0, I))``, then one signed
gradient step of the remaining budget, ``X~ = X' + (eps - alpha) * sign(grad_X' CE(f(X'), Y))``,
with the published alpha = eps / 2. The model is trained on ``CE(f(X~), Y)`` (the RFGSM-AT row of
the NuAT paper's Tables 1 and 2; Tramèr et al. themselves mixed clean and adversarial examples).
"""

from __future__ import annotations

import torch
from torch import nn

from nuat.methods.base import Method, MethodDefaults, StepContext, StepOutput
from nuat.methods.common import adversarial_ce, ce_objective, signed_ascent
from nuat.projections import bernoulli_start

DEFAULTS = MethodDefaults()


class RFGSMAT(Method):
    """RFGSM-AT. Hyperparameter: ``alpha`` (random-step size in pixels, default eps / 2); the
    gradient step is ``eps - alpha``."""

    def __init__(self, *, alpha: float | None = None) -> None:
        super().__init__(alpha=alpha)
        self.alpha = alpha

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> StepOutput:
        alpha = ctx.eps / 2 if self.alpha is None else self.alpha
        if not 0.0 <= alpha < ctx.eps:
            raise ValueError(f"R-FGSM needs 0 <= alpha < eps, got alpha {alpha} and eps {ctx.eps}")
        # sign(N(0, I)) is a fair +-1 per pixel: the same law as NuAT's Bernoulli start
        start = bernoulli_start(x, alpha, ctx.generator)
        x_adv = signed_ascent(model, start, x, ce_objective(y), eps=ctx.eps, step_size=ctx.eps - alpha, steps=1)
        loss, sums = adversarial_ce(model, x_adv, y)
        return StepOutput(loss=loss, sums=sums, x_adv=x_adv, passes=(2, 1, 1))
