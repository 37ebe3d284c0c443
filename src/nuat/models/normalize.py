"""Per-channel input normalisation as a layer, so models take images in [0, 1]."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; ``x``: ``(B, C, H, W)`` -> same shape.

    ``mean`` and ``std`` are persistent buffers of shape ``(1, C, 1, 1)``: they follow
    ``.to(device)`` and are stored in the state dict.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.as_tensor(list(mean), dtype=torch.float32)
        std_t = torch.as_tensor(list(std), dtype=torch.float32)
        if mean_t.ndim != 1 or mean_t.shape != std_t.shape:
            raise ValueError(f"mean and std must be equal-length lists, got {mean!r}, {std!r}")
        if not bool((std_t > 0).all()):
            raise ValueError(f"std must be positive, got {std!r}")
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, C, H, W)`` with ``C == len(mean)``; returns ``(B, C, H, W)``."""
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class NormalizedModel(nn.Sequential):
    """``net(normalize(x))``; submodules are named ``normalize`` and ``net``.

    Input ``(B, C, H, W)`` in [0, 1]; output whatever ``net`` returns (logits ``(B, K)``).
    """

    def __init__(self, normalize: Normalize, net: nn.Module) -> None:
        super().__init__(OrderedDict([("normalize", normalize), ("net", net)]))
