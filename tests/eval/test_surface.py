"""The smoothness numbers and loss surface of ``nuat sanity`` against closed forms and models built
to be smooth, jittery or misleading."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nuat.eval.surface import directions, smoothness, surface
from nuat_testing import Linear

EPS = 0.05


def _linear(classes=3, seed=0, n=6):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(classes, 16, generator=g, dtype=torch.float64)
    model = Linear(w, torch.zeros(classes, dtype=torch.float64))
    x = 0.3 + 0.4 * torch.rand(n, 1, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    return model, x, y, w


def _ce(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def test_directions_are_the_gradient_sign_and_an_orthogonal_unit_direction():
    model, x, y, w = _linear()
    grad, g, r = directions(model, x, y, torch.Generator().manual_seed(0))
    # d CE / dx of a linear model: (softmax - onehot) @ W
    expected = ((torch.softmax(model(x), 1) - F.one_hot(y, 3)) @ w).view_as(x)
    torch.testing.assert_close(grad, expected.detach())
    assert torch.equal(g, expected.sign())
    assert ((g.flatten(1) * r.flatten(1)).sum(1).abs() < 1e-9).all()  # orthogonal to sign(gradient)
    torch.testing.assert_close(r.flatten(1).abs().amax(1), torch.ones(len(y), dtype=torch.float64))


def test_smoothness_of_a_linear_model_and_its_loss_curves():
    # the CE of a linear model is convex along any line: total variation / range is 1 (monotone)
    # or at most 2 (one turn); the curves are the losses at x + t d for t in [-eps, eps]
    model, x, y, _ = _linear()
    s = smoothness(model, x, y, eps=EPS, generator=torch.Generator().manual_seed(0))
    assert s.zero_gradient == 0.0 and 1.0 <= s.variation <= 2.0
    assert len(s.ts) == 41 and s.ts[0] == -EPS and s.ts[-1] == EPS and abs(float(s.ts[20])) < 1e-12
    _, g, r = directions(model, x, y, torch.Generator().manual_seed(0))
    for i in (0, 13, 40):
        torch.testing.assert_close(s.along_gradient[:, i], _ce(model, x + s.ts[i] * g, y))
        torch.testing.assert_close(s.along_random[:, i], _ce(model, x + s.ts[i] * r, y))


def test_surface_grid_is_the_loss_on_the_plane_of_both_directions():
    model, x, y, _ = _linear(n=1)
    ts, grid = surface(model, x, y, eps=EPS, points=5, generator=torch.Generator().manual_seed(4))
    _, g, r = directions(model, x, y, torch.Generator().manual_seed(4))
    assert grid.shape == (5, 5) and ts[0] == -EPS and ts[-1] == EPS
    for i, j in ((0, 4), (4, 0), (1, 3), (2, 2)):
        torch.testing.assert_close(grid[i, j], _ce(model, x + ts[i] * g + ts[j] * r, y)[0])


class _Jitter(nn.Module):
    """A linear model behind a fast sawtooth of the input: locally informative gradient, jagged loss."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        return self.base(x + 0.02 * torch.sin(2000.0 * x))


def test_a_jagged_loss_has_a_high_total_variation():
    model, x, y, _ = _linear()
    s = smoothness(_Jitter(model), x, y, eps=EPS, generator=torch.Generator().manual_seed(0))
    assert s.variation > 3.0


class _Trap(nn.Module):
    """Two pixels, label 0, logits (0, u) with u = d1 + d2 + 10 relu(-(d1 + d2) - 1.5 eps), d = x - 0.5.
    At x = 0.5 the gradient points to (+, +), where u gains 2 eps at distance eps, but the corner
    (-, -) gains 0.3 (> 2 eps = 0.2): one of the four sign directions beats sign(gradient), the
    other two gain nothing, so the best of 8 random directions wins unless it never draws (-, -)."""

    def forward(self, x):
        d = x.flatten(1) - 0.5
        s = d.sum(1, keepdim=True)
        u = s + 10 * torch.relu(-s - 0.15)
        return torch.cat([torch.zeros_like(u), u], 1)


def test_gradient_loses_counts_where_the_best_random_direction_beats_the_gradient():
    x, y = torch.full((32, 1, 1, 2), 0.5, dtype=torch.float64), torch.zeros(32, dtype=torch.long)
    s = smoothness(_Trap(), x, y, eps=0.1, generator=torch.Generator().manual_seed(0))
    # P(8 draws miss (-, -)) = (3/4)^8 = 10%
    assert s.zero_gradient == 0.0 and 0.75 <= s.gradient_loses < 1.0
    model, xl, yl, _ = _linear(classes=2, n=16)  # binary linear: sign(gradient) is the best corner
    assert smoothness(model, xl, yl, eps=EPS, generator=torch.Generator().manual_seed(0)).gradient_loses == 0.0


class _JitterMarked(nn.Module):
    """``_Jitter`` only for images whose first pixel is above 0.75 (a marker): a jagged minority."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        marked = (x.flatten(1)[:, :1] > 0.75).to(x.dtype).view(-1, 1, 1, 1)
        return self.base(x + marked * 0.02 * torch.sin(2000.0 * x))


def test_the_variation_is_the_median_over_examples():
    """Two jagged images of six (4 of 12 curves) leave the median at the smooth curves' value, while
    their own curves vary several times their range: a mean or a maximum would flag the model."""
    from nuat.eval.surface import _variation

    model, x, y, _ = _linear()
    x[:2, 0, 0, 0] = 0.95  # the marker: stays above 0.75 within eps = 0.05
    s = smoothness(_JitterMarked(model), x, y, eps=EPS, generator=torch.Generator().manual_seed(0))
    per_curve = torch.cat([_variation(s.along_gradient), _variation(s.along_random)])
    jagged = torch.cat([per_curve[:2], per_curve[6:8]])
    assert jagged.min() > 3.0 and per_curve.mean() > 2.0  # the minority is jagged enough to move a mean
    assert 1.0 <= s.variation <= 2.0
