"""GAMA-PGD (Sriramanan et al., "Guided Adversarial Attack for Evaluating and Enhancing
Adversarial Defenses", NeurIPS 2020), the evaluation attack of the NuAT paper's tables.

Published setting (reference details): 100 steps; initial step size 2 * eps, divided by 10 at
steps 60 and 85; random sign start at +-eps; maximise the margin of the softmax outputs
``max_{j != y} p_j - p_y`` plus ``w * ||p(x_adv) - p(x)||_2^2``, the guide term, with w = 50
decayed linearly to 0 over the first 25 steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nuat.attacks.common import check_batch, check_steps, sign_step, where_examples
from nuat.projections import bernoulli_start, project_linf

REFERENCES = ("clean", "start")


def softmax_margin(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example ``max_{j != y} p_j - p_y`` of softmax outputs ``probs`` (B, K); shape (B,)."""
    true = probs.gather(1, labels[:, None]).squeeze(1)
    other = probs.scatter(1, labels[:, None], float("-inf")).max(dim=1).values
    return other - true


def gama_step_size(step: int, initial: float, drops: Sequence[int], factor: float) -> float:
    """Step size at ``step`` (0-based): ``initial`` divided by ``factor`` once per drop passed."""
    return initial / factor ** sum(1 for d in drops if step >= d)


def gama_pgd(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float,
    steps: int = 100,
    step_size: float | None = None,
    drops: Sequence[int] = (60, 85),
    drop_factor: float = 10.0,
    guide_weight: float = 50.0,
    guide_steps: int = 25,
    reference: str = "start",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Untargeted GAMA-PGD under the L-infinity threat model.

    Args:
        inputs: (B, C, H, W) images in [0, 1]; labels: (B,) class indices (any integer dtype).
        eps: L-infinity radius in pixels; steps: number of signed-gradient steps.
        step_size: initial step (default 2 * eps), divided by ``drop_factor`` at each step in
            ``drops``.
        guide_weight, guide_steps: weight of the squared-L2 guide term at step 0 and the number
            of steps over which it decays linearly to 0 (GAMA's relaxation term).
        reference: where the guide's reference softmax is taken: "start" (the random start, as
            the reference details and the GAMA authors' code; default) or "clean" (the clean
            image, the centre of the ball, as GAMA's Eq. 3 is written).
        generator: source of the random sign start, on the inputs' device (default: the global one).
    Returns:
        (B, C, H, W) adversarial images in the eps-ball and [0, 1]: for each example the first
        iterate that fooled the model, otherwise the last iterate.
    """
    if reference not in REFERENCES:
        raise ValueError(f"unknown GAMA reference {reference!r}; choose one of: {', '.join(REFERENCES)}")
    check_steps(steps)
    labels = check_batch(inputs, labels, eps)
    initial = 2.0 * eps if step_size is None else step_size
    x_adv = bernoulli_start(inputs, eps, generator)  # +-eps per pixel, clamped to the box
    with torch.no_grad():
        ref = torch.softmax(model(inputs if reference == "clean" else x_adv), dim=1)
    best = x_adv.detach().clone()
    robust = torch.ones(labels.shape[0], dtype=torch.bool, device=inputs.device)
    for step in range(steps + 1):
        # linear decay of the guide weight to 0 over the first guide_steps steps
        weight = guide_weight * max(0.0, 1.0 - step / guide_steps) if guide_steps > 0 else 0.0
        with torch.enable_grad():
            z_in = x_adv.detach().requires_grad_(True)
            logits = model(z_in)
            fooled = logits.argmax(1) != labels
            grad = None
            if step < steps:
                probs = torch.softmax(logits, dim=1)
                objective = softmax_margin(probs, labels) + weight * (probs - ref).pow(2).sum(1)
                (grad,) = torch.autograd.grad(objective.sum(), z_in)
        best = where_examples(fooled & robust, x_adv.detach(), best)
        robust &= ~fooled
        if grad is None:
            break
        size = gama_step_size(step, initial, drops, drop_factor)
        x_adv = project_linf(sign_step(x_adv, grad, size), inputs, eps)
    best = where_examples(robust, x_adv.detach(), best)
    return best.detach()
