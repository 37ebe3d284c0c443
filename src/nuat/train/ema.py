"""Exponential moving average of a model's whole state (weights and BatchNorm buffers), Sec. 5.4."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """``avg = (1 - tau) * current + tau * avg`` after every optimiser step (reference details).

    Floating-point parameters and buffers (BatchNorm running mean/var) are averaged; integer
    buffers (``num_batches_tracked``) are copied. The averaged model stays in eval mode.
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
        avg_state = self.model.state_dict()
        floats_avg, floats_cur = [], []
        for name, value in model.state_dict().items():
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
        return self.model.state_dict()
