"""FGSM adversarial training (Goodfellow, Shlens & Szegedy, ICLR 2015, Sec. 6, "Adversarial
training of deep networks").

The attack starts at the clean image (zero init) and takes one signed step of size eps on the
cross-entropy. The published objective mixes clean and adversarial cross-entropy,
``alpha * CE(f(X), Y) + (1 - alpha) * CE(f(X + eps sign(grad)), Y)`` with alpha = 0.5; here that
weight is ``clean_weight`` (0 gives the adversarial-only variant that later papers call FGSM-AT).
Known to suffer catastrophic overfitting / gradient masking (NuAT paper, Sec. 4 and Fig. 1b).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nuat.methods.base import Method, MethodDefaults, StepContext, StepOutput, accuracy_sums
from nuat.methods.common import adversarial_sums, ce_objective, signed_ascent

DEFAULTS = MethodDefaults()


class FGSMAT(Method):
    """FGSM-AT. Hyperparameters: ``clean_weight`` (alpha of Goodfellow et al., default 0.5),
    ``step_size`` (pixels; default eps)."""

    def __init__(self, *, clean_weight: float = 0.5, step_size: float | None = None) -> None:
        super().__init__(clean_weight=clean_weight, step_size=step_size)
        if not 0.0 <= clean_weight < 1.0:
            raise ValueError(f"clean_weight must lie in [0, 1), got {clean_weight}")
        self.clean_weight = clean_weight
        self.step_size = step_size

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> StepOutput:
        step = ctx.eps if self.step_size is None else self.step_size
        x_adv = signed_ascent(model, x, x, ce_objective(y), eps=ctx.eps, step_size=step, steps=1)
        logits_adv = model(x_adv)
        ce_adv = F.cross_entropy(logits_adv, y)
        m = y.shape[0]
        if self.clean_weight > 0:
            logits_clean = model(x)
            ce = F.cross_entropy(logits_clean, y)
            loss = self.clean_weight * ce + (1 - self.clean_weight) * ce_adv
            sums = accuracy_sums(logits_clean, logits_adv, y)
            sums["ce"] = ce.detach() * m
            passes = (3, 1, 2)  # attack forward, clean and adversarial training passes
        else:
            loss = ce_adv
            sums = adversarial_sums(logits_adv, y)
            passes = (2, 1, 1)
        sums["ce_adv"] = ce_adv.detach() * m
        sums["loss"] = loss.detach() * m
        return StepOutput(loss=loss, sums=sums, x_adv=x_adv, passes=passes)
