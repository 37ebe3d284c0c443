"""I-FGSM (Kurakin et al., 2017): iterated FGSM without random start.

The published NuAT runs select the best epoch with a 7-step I-FGSM at eps, step eps/7, on the
held-out validation split (reference details).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nuat.attacks.common import check_batch, check_steps, input_gradient, sign_step
from nuat.projections import project_linf


def ifgsm(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float,
    steps: int = 7,
    step_size: float | None = None,
) -> torch.Tensor:
    """Iterative FGSM on the cross-entropy loss, starting at the clean input.

    Args:
        inputs: (B, C, H, W) images in [0, 1]; labels: (B,) class indices (any integer dtype).
        eps: L-infinity radius; steps: number of steps; step_size: defaults to eps / steps.
    Returns:
        The last iterate, (B, C, H, W), inside the eps-ball and [0, 1].
    """
    check_steps(steps)
    labels = check_batch(inputs, labels, eps)
    step = eps / steps if step_size is None else step_size
    x_adv = inputs.detach()
    for _ in range(steps):
        grad = input_gradient(model, x_adv, lambda z: F.cross_entropy(z, labels))
        x_adv = project_linf(sign_step(x_adv, grad, step), inputs, eps)
    return x_adv.detach()
