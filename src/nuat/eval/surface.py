"""The loss around an input along the gradient-sign direction and a random direction orthogonal to
it (paper Sec. 6.3, Fig. 1), its smoothness numbers, and the plot.

Losses are computed on a float64 copy of the model so that the numbers reflect the function,
not float32 rounding; points are not clamped to [0, 1] (this describes the function, it is not
an attack).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nuat.figures import save_figure


@dataclass
class Smoothness:
    """Numbers from :func:`smoothness` (examples = the clean-correct images given).

    zero_gradient: fraction of examples whose input gradient is exactly zero.
    gradient_loses: fraction where the best of ``random_directions`` random sign directions
        raises the loss at distance eps more than the gradient-sign direction does (a smooth,
        honestly differentiable model makes this ~0: the first-order direction wins).
    variation: median over examples and both directions of total variation / range of the loss
        along the line in [-eps, eps] (1: monotone, 2: one turn; staircases and jitter score high).
    ts: (T,) offsets; along_gradient, along_random: (E, T) losses for plotting.
    """

    zero_gradient: float
    gradient_loses: float
    variation: float
    ts: torch.Tensor
    along_gradient: torch.Tensor
    along_random: torch.Tensor


def _losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def directions(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gradient, gradient sign g, random direction r orthogonal to g with L-inf norm 1), each (B, C, H, W)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    g = grad.sign()
    r = torch.randint(0, 2, x.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
    gf, rf = g.flatten(1), r.flatten(1)
    norm = (gf * gf).sum(1, keepdim=True)
    rf = rf - torch.where(norm > 0, (rf * gf).sum(1, keepdim=True) / norm.clamp_min(1e-12), torch.zeros_like(norm)) * gf
    rf = rf / rf.abs().amax(1, keepdim=True).clamp_min(1e-12)
    return grad, g, rf.view_as(x)


def line(model: nn.Module, x: torch.Tensor, y: torch.Tensor, d: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """Losses (B, T) at ``x + t * d`` for each t in ``ts``."""
    return torch.stack([_losses(model, x + float(t) * d, y) for t in ts], dim=1)


def _variation(curves: torch.Tensor) -> torch.Tensor:
    tv = (curves[:, 1:] - curves[:, :-1]).abs().sum(1)
    span = curves.amax(1) - curves.amin(1)
    return torch.where(span > 1e-9, tv / span.clamp_min(1e-12), torch.ones_like(tv))


def float64_copy(model: nn.Module) -> nn.Module:
    """A float64 copy in eval mode (the original is untouched)."""
    return copy.deepcopy(model).to(torch.float64).eval()


def smoothness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, points: int = 41,
               random_directions: int = 8, generator: torch.Generator) -> Smoothness:
    """Smoothness numbers of the cross-entropy around each (x, y); x (B, C, H, W) in [0, 1]."""
    m = float64_copy(model)
    x = x.to(torch.float64)
    grad, g, r = directions(m, x, y, generator)
    ts = torch.linspace(-eps, eps, points, dtype=torch.float64)
    along_g, along_r = line(m, x, y, g, ts), line(m, x, y, r, ts)
    base = _losses(m, x, y)
    gain_g = _losses(m, x + eps * g, y) - base
    gain_r = torch.stack([
        _losses(m, x + eps * (torch.randint(0, 2, x.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1), y)
        for _ in range(random_directions)], dim=1).amax(1) - base
    zero = (grad.flatten(1).abs().amax(1) == 0).double().mean().item()
    loses = (gain_r > gain_g + 1e-9).double().mean().item()
    variation = torch.cat([_variation(along_g), _variation(along_r)]).median().item()
    return Smoothness(zero, loses, variation, ts, along_g, along_r)


def surface(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, points: int = 21,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(ts (T,), losses (T, T)) of one example ``x`` (1, C, H, W) on the plane spanned by the
    gradient sign (first axis) and an orthogonal random direction (second axis), in [-eps, eps]^2."""
    m = float64_copy(model)
    x = x.to(torch.float64)
    _, g, r = directions(m, x, y, generator)
    ts = torch.linspace(-eps, eps, points, dtype=torch.float64)
    grid = torch.stack([torch.cat([_losses(m, x + float(a) * g + float(b) * r, y) for b in ts]) for a in ts])
    return ts, grid


def plot_surface(path: str | Path, ts: torch.Tensor, grid: torch.Tensor, result: Smoothness, title: str) -> Path:
    """Save the loss surface of one example (3-D) and the loss along both directions for a few
    examples (2-D) as a PNG; returns the path. Needs matplotlib (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig = plt.figure(figsize=(11, 4.5))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    a, b = torch.meshgrid(ts, ts, indexing="ij")
    ax.plot_surface(a.numpy(), b.numpy(), grid.numpy(), cmap="viridis", linewidth=0)
    ax.set_xlabel("along sign(gradient)")
    ax.set_ylabel("random orthogonal")
    ax.set_zlabel("cross-entropy")
    ax.set_title("loss surface, first image")
    ax2 = fig.add_subplot(1, 2, 2)
    shown = min(8, result.along_gradient.shape[0])
    for i in range(shown):
        color = f"C{i}"
        ax2.plot(result.ts.numpy(), result.along_gradient[i].numpy(), color=color, linestyle="-")
        ax2.plot(result.ts.numpy(), result.along_random[i].numpy(), color=color, linestyle="--")
    ax2.set_xlabel("offset t (pixels)")
    ax2.set_ylabel("cross-entropy")
    ax2.set_title(f"{shown} images: solid sign(gradient), dashed random")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
