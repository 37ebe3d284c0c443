"""GAT, Guided Adversarial Training (Sriramanan et al., "Guided Adversarial Attack for Evaluating
and Enhancing Adversarial Defenses", NeurIPS 2020, Sec. 5, "Guided Adversarial Training").

The single-step predecessor of NuAT (NuAT paper, Sec. 3): NuAT's structure with a squared-L2
distance between softmax outputs in place of the nuclear norm of the logit difference.

  1. clean logits f(X) in train mode (the loss's first term and, detached, the attack's reference);
  2. attack in eval mode from Bernoulli noise ``+-alpha`` (alpha = eps / 2, published 4/255 at
     8/255): one signed step of size eps on ``CE(f(X~), Y) + lam' * ||softmax f(X~) - softmax f(X)||^2``,
     with ``lam' = lam`` on even and 0 on odd minibatches (``alternate``: the attack-diversifying
     alternation the NuAT paper, Sec. 5.1, credits to Sriramanan et al.);
  3. loss ``CE(f(X), Y) + lam * mean_i ||softmax f(X~_i) - softmax f(X_i)||_2^2``.

``lam`` is the loop's lambda (``--lam-max``): the published CIFAR-10 value 10, multiplied by 4 for
the last 14% of the run (the authors' script: ``mul = 4`` after epoch 85 of 100; ``--lam-boost``).
The script's learning rate is a step schedule: the peak (0.1) divided by 10 after epochs 70 and 85
of 100, i.e. from 71% and 86% of the run on (``lr_drops``; ``--lr-drops none`` for the cyclic one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nuat.methods.base import Method, MethodDefaults, StepContext, StepOutput, regularised_sums
from nuat.methods.common import signed_ascent
from nuat.projections import bernoulli_start

#: lambda = 10 from the first epoch (ramp_fraction 0: no ramp), x 4 from 86% of the run on; LR / 10
#: from 71% and again from 86% of the run on
DEFAULTS = MethodDefaults(lam_max=10.0, ramp_fraction=0.0, lam_boost=(0.86, 4.0), lr_drops=(0.71, 0.86))


def softmax_l2(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """GAT's regulariser: ``mean_i ||softmax(a_i) - softmax(b_i)||_2^2`` for logits (M, C); a scalar."""
    diff = F.softmax(logits_a, dim=1) - F.softmax(logits_b, dim=1)
    return (diff * diff).sum(dim=1).mean()


class GAT(Method):
    """GAT. Hyperparameters: ``alpha`` (Bernoulli start, pixels; default eps / 2), ``alternate``
    (default True)."""

    def __init__(self, *, alpha: float | None = None, alternate: bool = True) -> None:
        super().__init__(alpha=alpha, alternate=alternate)
        self.alpha = alpha
        self.alternate = alternate

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> StepOutput:
        logits_clean = model(x)
        ce = F.cross_entropy(logits_clean, y)
        lam_attack = ctx.lam if (not self.alternate or ctx.batch_index % 2 == 0) else 0.0
        ref = logits_clean.detach()

        def objective(z: torch.Tensor) -> torch.Tensor:
            value = F.cross_entropy(z, y)
            return value + lam_attack * softmax_l2(z, ref) if lam_attack else value

        alpha = ctx.eps / 2 if self.alpha is None else self.alpha
        start = bernoulli_start(x, alpha, ctx.generator)
        x_adv = signed_ascent(model, start, x, objective, eps=ctx.eps, step_size=ctx.eps, steps=1)
        logits_adv = model(x_adv)
        reg = softmax_l2(logits_adv, logits_clean)
        loss = ce + ctx.lam * reg
        sums = regularised_sums(logits_clean, logits_adv, y, ce=ce, reg=reg, loss=loss)
        # forwards: clean, attack, adversarial; input backward: the attack step; full backwards:
        # through the clean and the adversarial pass
        return StepOutput(loss=loss, sums=sums, x_adv=x_adv, passes=(3, 1, 2))
