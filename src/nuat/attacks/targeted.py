"""Targeted PGD over several target classes (the multi-target attack of Gowal et al., 2019, and
of AutoAttack's APGD-T): one PGD run per target class, an example counts as broken when any run
makes the model misclassify it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nuat.attacks.common import check_batch, check_loss, check_steps, sign_step, where_examples
from nuat.projections import project_linf, random_uniform_start

LOSSES = ("margin", "ce")


def target_classes(logits: torch.Tensor, labels: torch.Tensor, k: int | None) -> torch.Tensor:
    """The ``k`` most likely wrong classes per example, most likely first (all K - 1 if None).

    Args: logits (B, K), labels (B,). Returns int64 (B, k).
    """
    ranked = logits.detach().scatter(1, labels[:, None], float("-inf")).argsort(dim=1, descending=True)
    wrong = ranked[:, : logits.shape[1] - 1]
    return wrong if k is None else wrong[:, : min(k, wrong.shape[1])]


def _targeted_objective(loss: str, labels: torch.Tensor, targets: torch.Tensor):
    check_loss("targeted", loss, LOSSES)
    if loss == "margin":  # z_t - z_y (Carlini & Wagner's targeted margin)
        return lambda z: (z.gather(1, targets[:, None]) - z.gather(1, labels[:, None])).sum()
    return lambda z: -F.cross_entropy(z, targets, reduction="sum")  # ce: descend the target class's CE


def targeted_pgd(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float,
    steps: int = 100,
    step_size: float | None = None,
    targets: int | None = 9,
    loss: str = "margin",
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Targeted L-infinity PGD against the top-``targets`` wrong classes (None: all of them).

    The targets are ranked by the clean logits. Each target gets its own PGD run (from its own
    random start) on the examples not yet fooled; any misclassification counts as a success.

    Args:
        inputs: (B, C, H, W) in [0, 1]; labels: (B,) class indices (any integer dtype).
        eps: radius; steps: steps per target; step_size: defaults to ``2.5 * eps / steps``.
        targets: how many of the most likely wrong classes to try (capped at K - 1).
        loss: "margin" (``z_t - z_y``) or "ce" (minimise the target's cross-entropy).
        random_start: start each run from uniform noise in the eps-ball (else from ``inputs``).
        generator: source of the random starts, on the inputs' device (default: the global one).
    Returns:
        (B, C, H, W) adversarial images in the eps-ball and [0, 1]: the first iterate that fooled
        the model where one was found, otherwise the last iterate of the last target's run.
    Raises:
        ValueError: ``steps < 1``, ``targets < 1`` or an unknown ``loss``.
    """
    check_steps(steps)
    labels = check_batch(inputs, labels, eps)
    if targets is not None and targets < 1:  # no target run: the clean images would pass as an attack
        raise ValueError(f"targets must be >= 1 or None (all wrong classes), got {targets}")
    check_loss("targeted", loss, LOSSES)  # before the model pass that ranks the targets
    size = 2.5 * eps / steps if step_size is None else step_size
    with torch.no_grad():
        ranked = target_classes(model(inputs), labels, targets)
    result = inputs.detach().clone()
    robust = torch.ones(labels.shape[0], dtype=torch.bool, device=inputs.device)
    for rank in range(ranked.shape[1]):
        idx = robust.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        x0, y0, t0 = inputs[idx], labels[idx], ranked[idx, rank]
        objective = _targeted_objective(loss, y0, t0)
        x_adv = random_uniform_start(x0, eps, generator) if random_start else x0.detach().clone()
        alive = torch.ones(idx.numel(), dtype=torch.bool, device=inputs.device)
        best = x_adv.detach().clone()
        for step in range(steps + 1):
            with torch.enable_grad():
                z_in = x_adv.detach().requires_grad_(True)
                logits = model(z_in)
                fooled = (logits.argmax(1) != y0) & alive
                grad = torch.autograd.grad(objective(logits), z_in)[0] if step < steps else None
            best = where_examples(fooled, x_adv.detach(), best)
            alive &= ~fooled
            if grad is None:
                break
            x_adv = project_linf(sign_step(x_adv, grad, size), x0, eps)
        result[idx] = where_examples(alive, x_adv.detach(), best)
        robust[idx] = alive  # every example of idx was robust before this target's run
    return result
