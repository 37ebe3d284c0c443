"""Accuracy of a model under an attack, batch by batch, with every adversarial batch checked."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from nuat.attacks.common import eval_mode
from nuat.projections import check_linf

Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def batch_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack | None, eps: float) -> torch.Tensor:
    """Per-example correctness (B,) bool of ``model`` on ``attack(model, x, y)`` (clean if None).

    The model runs in eval mode and float32 (autocast off, whatever the caller's setting); the
    adversarial batch must lie in the eps-ball and [0, 1]
    (:class:`nuat.projections.ThreatModelViolation` otherwise).
    """
    x = x.float()
    with eval_mode(model), torch.autocast(x.device.type, enabled=False):
        if attack is not None:
            x_adv = attack(model, x, y)
            check_linf(x_adv, x, eps)
        else:
            x_adv = x
        with torch.no_grad():
            return model(x_adv).argmax(1) == y


def accuracy(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    attack: Attack | None = None,
    *,
    eps: float,
) -> float:
    """Fraction of examples in ``batches`` (an iterable of (x, y)) classified correctly under ``attack``.

    ``x``: (B, C, H, W) in [0, 1], ``y``: (B,) int64 (e.g. a :class:`nuat.data.BatchLoader`);
    ``attack(model, x, y)`` returns the adversarial batch, so bind its options first, e.g.
    ``lambda m, x, y: pgd(m, x, y, eps=eps, steps=20)``; ``eps`` (pixels) is the radius every
    batch is checked against. Each batch as in :func:`batch_correct`: eval mode (restored after),
    :class:`nuat.projections.ThreatModelViolation` for a batch outside the threat model.
    """
    correct = total = 0
    for x, y in batches:
        ok = batch_correct(model, x, y, attack, eps)
        correct += int(ok.sum())
        total += y.shape[0]
    return correct / max(total, 1)
