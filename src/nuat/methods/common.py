"""Pieces the baseline methods share: signed-gradient ascent inside the eps-ball.

Every baseline builds its adversarial batch the same way: a start point (clean, uniform,
Bernoulli or Gaussian noise), then signed steps on some objective of the logits, each followed by
projection onto the eps-ball and the [0, 1] box. Only the start, the step size, the number of
steps and the objective differ, so they are arguments here and the method files stay short.

Attacks run with the model in eval mode (BatchNorm running statistics), as in the NuAT and
TRADES reference code; the training forward passes that follow are in train mode. (Madry et al.
and Wong et al. generated their training attacks in train mode; for the BatchNorm-free MNIST
networks the two are the same.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nuat.attacks.common import eval_mode, input_gradient, sign_step
from nuat.projections import project_linf

Objective = Callable[[torch.Tensor], torch.Tensor]

#: most attack steps a training method takes: far beyond the published 10 (PGD-AT, TRADES), and a
#: bound so that a typo (--attack-steps 100000000) is refused instead of running one step for ever
MAX_TRAIN_ATTACK_STEPS = 1000


def check_train_attack_steps(method: str, steps: int) -> None:
    """ValueError unless ``1 <= steps <= MAX_TRAIN_ATTACK_STEPS``."""
    if not 1 <= steps <= MAX_TRAIN_ATTACK_STEPS:
        raise ValueError(f"{method} takes 1 to {MAX_TRAIN_ATTACK_STEPS} attack steps, got {steps}")


def ce_objective(labels: torch.Tensor) -> Objective:
    """Mean cross-entropy of logits (M, C) against ``labels`` (M,): the usual attack objective."""
    return lambda logits: F.cross_entropy(logits, labels)


def signed_ascent(
    model: nn.Module,
    start: torch.Tensor,
    inputs: torch.Tensor,
    objective: Objective,
    *,
    eps: float,
    step_size: float,
    steps: int,
) -> torch.Tensor:
    """``steps`` signed-gradient ascent steps on ``objective(model(x))`` from ``start``.

    Args:
        start: (M, C, H, W) first iterate (need not be in the ball; it is projected first).
        inputs: (M, C, H, W) clean images in [0, 1], the centre of the eps-ball.
        objective: maps logits (M, classes) to a scalar to maximise.
        eps, step_size: L-infinity radius and step, in [0, 1] pixel units.
    Returns:
        (M, C, H, W) detached adversarial images in the eps-ball and [0, 1]. The model's
        parameter gradients are untouched; it runs in eval mode and its mode is restored.
    """
    x_adv = project_linf(start.detach(), inputs, eps)
    with eval_mode(model):
        for _ in range(steps):
            grad = input_gradient(model, x_adv, objective)
            x_adv = project_linf(sign_step(x_adv, grad, step_size), inputs, eps)
    return x_adv.detach()


def adversarial_sums(logits_adv: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-batch sums for a method that trains on adversarial images only: ``correct_adv`` and
    ``n`` (device tensors). Clean training accuracy is not measured there: it would cost an extra
    forward pass that the method itself does not need, and the cost accounting would count it."""
    return {
        "correct_adv": (logits_adv.detach().argmax(1) == labels).sum(),
        "n": torch.full((), labels.shape[0], device=labels.device, dtype=torch.int64),
    }


def adversarial_ce(model: nn.Module, x_adv: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``CE(f(X~), Y)`` in the model's current (train) mode and its per-batch sums (``correct_adv``,
    ``n``, ``ce_adv``, ``loss``): the training loss of FBF, R-FGSM-AT and PGD-AT."""
    logits_adv = model(x_adv)
    loss = F.cross_entropy(logits_adv, labels)
    sums = adversarial_sums(logits_adv, labels)
    sums["ce_adv"] = loss.detach() * labels.shape[0]
    sums["loss"] = sums["ce_adv"]
    return loss, sums
