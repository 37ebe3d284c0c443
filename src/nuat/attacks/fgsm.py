"""FGSM (Goodfellow et al., 2015): one signed-gradient step of size eps from the clean input."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nuat.attacks.common import check_batch, input_gradient, sign_step
from nuat.projections import project_linf


def fgsm(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, eps: float) -> torch.Tensor:
    """Untargeted FGSM on the cross-entropy loss.

    Args:
        inputs: (B, C, H, W) images in [0, 1]; labels: (B,) class indices (any integer dtype).
        eps: L-infinity radius in pixel units.
    Returns:
        Adversarial images, (B, C, H, W), in the eps-ball and in [0, 1].
    """
    labels = check_batch(inputs, labels, eps)
    grad = input_gradient(model, inputs, lambda z: F.cross_entropy(z, labels))
    return project_linf(sign_step(inputs, grad, eps), inputs, eps).detach()
