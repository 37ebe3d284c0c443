"""Square Attack (Andriushchenko et al., ECCV 2020), the score-based black-box attack of
AutoAttack, run through the authors' package ``pyautoattack``.

It uses only the model's outputs (no gradients), so it is the black-box reference of the
gradient-masking checks of Athalye et al. (2018): a white-box attack should do at least as well.
"""

from __future__ import annotations

import torch
from torch import nn

from nuat.attacks.autoattack import collect_flags
from nuat.attacks.common import check_batch


def square(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float,
    queries: int = 5000,
    seed: int = 0,
) -> torch.Tensor:
    """Untargeted L-infinity Square Attack with ``queries`` model queries per image.

    Args:
        inputs: (B, C, H, W) images in [0, 1]; labels: (B,) class indices (any integer dtype).
        eps: L-infinity radius in pixels; queries: query budget (AutoAttack uses 5000);
            seed: the package's seed (it reseeds the global torch generator).
    Returns:
        (B, C, H, W) images in the eps-ball and [0, 1]: a fooling point where one was found,
        else the clean image.
    """
    from pyautoattack import AutoAttack

    labels = check_batch(inputs, labels, eps)
    adversarial = inputs.detach().clone()
    with torch.no_grad():
        idx = (model(inputs).argmax(1) == labels).nonzero().squeeze(1)
    if idx.numel() == 0:
        return adversarial
    with collect_flags():  # the package's model checks are reported by nuat sanity itself
        adversary = AutoAttack(model, eps=eps, norm="Linf", version="custom", attacks=["square"], seed=seed,
                               device=inputs.device)
        adversary.square.n_queries = queries
        adv, y_adv = adversary.run_standard_evaluation(inputs[idx], labels[idx], batch_size=idx.numel())
    broken = (y_adv != labels[idx]).to(idx.device)
    adversarial[idx[broken]] = adv[broken].to(adversarial.dtype)
    return adversarial
