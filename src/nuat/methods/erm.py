"""ERM: standard training on clean images, no attack (the "Normal" row of the NuAT paper's
Tables 1 and 2). The reference point for the cost of every other method: one forward and one
full backward pass per training example."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nuat.methods.base import Method, MethodDefaults, StepContext, StepOutput, accuracy_sums

#: No regulariser; the loop's default LR shape (up 0.4, down 0.5 of the run).
DEFAULTS = MethodDefaults()


class ERM(Method):
    """Empirical risk minimisation: ``CE(f(X), Y)`` on the clean minibatch. No hyperparameters."""

    #: no robustness is trained, so there is none to collapse (nuat.train.health skips the check)
    adversarial = False

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> StepOutput:
        logits = model(x)
        ce = F.cross_entropy(logits, y)
        m = y.shape[0]
        sums = accuracy_sums(logits, None, y)
        sums["ce"] = ce.detach() * m
        sums["loss"] = ce.detach() * m
        return StepOutput(loss=ce, sums=sums, x_adv=None, passes=(1, 0, 1))
