"""Pieces shared by the attacks: gradient of a loss w.r.t. the inputs, model-mode handling."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def input_gradient(model: nn.Module, x: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Gradient of ``objective(model(x))`` (a scalar) w.r.t. ``x``; parameters get no gradient.

    Returns a tensor shaped like ``x``. Uses ``torch.autograd.grad`` so parameter ``.grad``
    fields are never touched (attacks can run inside a training step).
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = objective(model(x))
        (grad,) = torch.autograd.grad(loss, x)
    return grad


@contextlib.contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put models in eval mode (BatchNorm running statistics) and restore their modes afterwards."""
    modes = [m.training for m in models]
    try:
        for m in models:
            m.eval()
        yield
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)


def sign_step(x_adv: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
    """One ascent step along ``sign(grad)`` (L-infinity steepest ascent)."""
    return x_adv.detach() + step_size * torch.sign(grad)
