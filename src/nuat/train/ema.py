"""Exponential moving average of a model's whole state (weights and BatchNorm buffers), Sec. 5.4."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ModelEMA", "tau_for_run", "PUBLISHED_STEPS"]


#: optimiser steps of the published NuAT-WA run the taus were tuned for: CIFAR-10, 49,000 training
#: images, batch 64 (766 iterations per epoch), 100 epochs.
PUBLISHED_STEPS = 76_600


def tau_for_run(published_tau: float, total_steps: int, *, published_steps: int = PUBLISHED_STEPS) -> float:
    """The tau whose averaging horizon is the same fraction of this run as ``published_tau``'s was of
    the published run: ``published_tau ** (published_steps / total_steps)``.

    The horizon 1/(1 - tau) of tau = 0.9998 is 5,000 steps, 6.5% of the published run; a 3,700-step
    run with the same tau would still weigh its random initialisation by ~0.5 at the end. Equal to
    ``published_tau`` for a run of the published length.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    return float(published_tau ** (published_steps / total_steps))


class ModelEMA:
    """``avg = (1 - tau) * current + tau * avg`` after every optimiser step (reference details).

    Floating-point parameters and buffers (BatchNorm running mean/var) are averaged; integer
    buffers (``num_batches_tracked``) are copied. The averaged model, ``ema.model``, is a deep copy
    of ``model`` at construction (same device: build the average after ``model.to(device)``), in
    eval mode with frozen parameters; use it as ``ema.model(x)``.

    The average starts at ``model``'s initial weights, whose weight after n updates is ``tau**n``:
    the published tau 0.9998 suits a ~76,600-step run; for a shorter run take
    :func:`tau_for_run` (e.g. ``tau_for_run(0.9998, epochs * len(loader))``). Raises
    ``ValueError`` unless ``0 <= tau < 1``.
    """

    def __init__(self, model: nn.Module, tau: float) -> None:
        if not (0.0 <= tau < 1.0):
            raise ValueError(f"tau must lie in [0, 1), got {tau}")
        self.tau = float(tau)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current ``model`` state into the average (no host synchronisation)."""
        # named_parameters / named_buffers list a tensor shared by several modules (tied weights)
        # once; state_dict() lists it under every name, and the lerp would then apply tau twice
        avg_state = {**dict(self.model.named_parameters()), **dict(self.model.named_buffers())}
        current = {**dict(model.named_parameters()), **dict(model.named_buffers())}
        floats_avg, floats_cur = [], []
        for name, value in current.items():
            target = avg_state[name]
            if target.dtype.is_floating_point:
                floats_avg.append(target)
                floats_cur.append(value.detach())
            else:
                target.copy_(value)
        if floats_avg:
            # avg <- tau * avg + (1 - tau) * current, in one fused call
            torch._foreach_lerp_(floats_avg, floats_cur, 1.0 - self.tau)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged model's state dict."""
        return self.model.state_dict()
