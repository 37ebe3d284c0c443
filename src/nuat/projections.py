"""The L-infinity threat model: eps parsing, projection onto the eps-ball and the [0, 1] box.

One place parses and checks eps, so every command accepts the same spellings
("8/255", "0.3", "0.031").
"""

from __future__ import annotations

from fractions import Fraction

import torch

from nuat.errors import UsageError

__all__ = [
    "parse_eps", "project_linf", "check_linf",
    "ThreatModelViolation", "random_uniform_start", "bernoulli_start", "BALL_TOLERANCE",
]

#: Absolute slack allowed when checking that an adversarial batch lies in the eps-ball.
#: float32 rounding of ``x + delta`` can exceed eps by a few ulps of 1.0.
BALL_TOLERANCE = 1e-6


def parse_eps(value: str | float, name: str = "eps") -> float:
    """Parse an L-infinity radius in pixel units ([0, 1] images).

    Accepts a float (``0.3``), a numeric string (``"0.1"``) or a fraction (``"8/255"``).
    Raises :class:`UsageError` unless the value lies in (0, 1]; the message names the value as
    ``name`` (e.g. ``"--alpha"`` for another pixel-unit option parsed the same way).
    """
    if isinstance(value, (int, float)):
        eps = float(value)
    else:
        text = str(value).strip()
        try:
            eps = float(Fraction(text)) if "/" in text else float(text)
        except (ValueError, ZeroDivisionError):
            raise UsageError(f"{name} {value!r} is not a number; use e.g. 8/255 or 0.3") from None
    if not (0.0 < eps <= 1.0):
        raise UsageError(f"{name} {value!r} is out of range; it must lie in (0, 1] (pixels in [0, 1])")
    return eps


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project ``x_adv`` onto the eps-ball around ``x`` intersected with the [0, 1] box.

    Shapes: (B, C, H, W), pixels in [0, 1]. Differentiable almost everywhere.
    """
    return torch.clamp(torch.min(torch.max(x_adv, x - eps), x + eps), 0.0, 1.0)


def random_uniform_start(x: torch.Tensor, eps: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform noise in [-eps, eps] added to ``x``, clamped to [0, 1] (PGD's random start).

    Same shape and dtype as ``x``; ``generator`` must be on ``x``'s device (None: the global one).
    """
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
    return torch.clamp(x + eps * noise, 0.0, 1.0)


def bernoulli_start(x: torch.Tensor, alpha: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """NuAT's initial noise (Sec. 5.1): ``alpha * sign(U - 0.5)`` per pixel, then clamp to [0, 1].

    Same shape and dtype as ``x``; ``generator`` must be on ``x``'s device (None: the global one).
    """
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.clamp(x + alpha * torch.sign(u - 0.5), 0.0, 1.0)


class ThreatModelViolation(RuntimeError):
    """An adversarial batch left the eps-ball or the [0, 1] box: the evaluation must not count it."""


def check_linf(x_adv: torch.Tensor, x: torch.Tensor, eps: float, *, tol: float = BALL_TOLERANCE) -> None:
    """Raise :class:`ThreatModelViolation` unless ``x_adv`` is in the eps-ball around ``x`` and in [0, 1].

    Called on every adversarial batch before it is counted: one host read per batch (the four
    figures checked are gathered into one tensor first).
    """
    if x_adv.shape != x.shape:
        raise ThreatModelViolation(f"adversarial batch shape {tuple(x_adv.shape)} != clean shape {tuple(x.shape)}")
    if not x.numel():
        return
    figures = torch.stack([torch.isfinite(x_adv).all().double(), (x_adv.double() - x.double()).abs().max(),
                           x_adv.min().double(), x_adv.max().double()])
    finite, dist, lo, hi = figures.tolist()
    if not finite:
        raise ThreatModelViolation("adversarial batch contains NaN or Inf")
    if dist > eps + tol:
        raise ThreatModelViolation(f"adversarial batch is {dist:.6g} from the clean one in L-inf, eps is {eps:.6g}")
    if lo < 0.0 or hi > 1.0:
        raise ThreatModelViolation(f"adversarial batch leaves the [0, 1] box: min {lo:.6g}, max {hi:.6g}")
