"""The evaluation attacks: eps-ball and box, closed-form oracles on linear models, schedules."""

import pytest
import torch

from nuat.attacks import gama_pgd, pgd, pgd_trace, square, targeted_pgd
from nuat.attacks.gama import gama_step_size, softmax_margin
from nuat.attacks.targeted import target_classes
from nuat.projections import check_linf
from nuat_testing import Linear, edge_batch as batch, tiny_cnn




ATTACKS = {
    "gama-pgd": lambda m, x, y, e: gama_pgd(m, x, y, eps=e, steps=10, drops=(6, 8), guide_steps=3),
    "gama-pgd-start-ref": lambda m, x, y, e: gama_pgd(m, x, y, eps=e, steps=5, reference="start"),
    "targeted-top3": lambda m, x, y, e: targeted_pgd(m, x, y, eps=e, steps=5, targets=3),
    "targeted-all-ce": lambda m, x, y, e: targeted_pgd(m, x, y, eps=e, steps=3, targets=None, loss="ce"),
    "square": lambda m, x, y, e: square(m, x, y, eps=e, queries=50),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("eps", [8 / 255, 0.3])
def test_attack_stays_in_ball_and_box(name, eps):
    model = tiny_cnn()
    x, y = batch()
    x_adv = ATTACKS[name](model, x, y, eps)
    check_linf(x_adv, x, eps)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype


def linear_problem(classes, seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(classes, 16, generator=g, dtype=torch.float64)
    b = -0.5 * w.sum(1) + 0.1 * torch.randn(classes, generator=g, dtype=torch.float64)  # boundaries near x = 0.5
    x = 0.3 + 0.4 * torch.rand(n, 1, 4, 4, generator=g, dtype=torch.float64)  # eps-ball inside the box
    model = Linear(w, b)
    y = model(x).argmax(1)  # every example starts correct
    return model, x, y, w, b


def closed_form_robust(x, y, w, b, eps):
    """Robust iff z_j - z_y < 0 for every j != y at the worst corner: (w_j - w_y).x + b_j - b_y
    + eps * ||w_j - w_y||_1 < 0."""
    xf = x.flatten(1)
    diff = w[None, :, :] - w[y][:, None, :]                       # (n, K, d)
    worst = (diff * xf[:, None, :]).sum(-1) + b[None, :] - b[y][:, None] + eps * diff.abs().sum(-1)
    worst.scatter_(1, y[:, None], float("-inf"))
    return (worst < 0).all(1)


@pytest.mark.parametrize("eps", [0.01, 0.02, 0.04])
def test_targeted_pgd_over_all_targets_is_exact_on_a_linear_model(eps):
    model, x, y, w, b = linear_problem(classes=5)
    expected = closed_form_robust(x, y, w, b, eps)
    assert 0 < int(expected.sum()) < len(y)  # the oracle splits the batch: the test can fail
    x_adv = targeted_pgd(model, x, y, eps=eps, steps=10, step_size=eps / 2, targets=None)
    check_linf(x_adv, x, eps)
    assert torch.equal(model(x_adv).argmax(1) == y, expected)


@pytest.mark.parametrize("eps", [0.01, 0.03])
def test_gama_and_margin_pgd_match_closed_form_on_binary_linear_model(eps):
    model, x, y, w, b = linear_problem(classes=2, seed=1)
    expected = closed_form_robust(x, y, w, b, eps)
    assert 0 < int(expected.sum()) < len(y)
    for x_adv in (gama_pgd(model, x, y, eps=eps), pgd(model, x, y, eps=eps, steps=20, loss="margin")):
        check_linf(x_adv, x, eps)
        assert torch.equal(model(x_adv).argmax(1) == y, expected)


def test_top_k_targets_are_the_most_likely_wrong_classes():
    logits = torch.tensor([[0.0, 5.0, 3.0, 4.0], [9.0, 1.0, 2.0, 3.0]])
    labels = torch.tensor([1, 3])
    assert target_classes(logits, labels, 2).tolist() == [[3, 2], [0, 2]]
    assert target_classes(logits, labels, None).tolist() == [[3, 2, 0], [0, 2, 1]]


def test_gama_schedule_matches_the_published_one():
    eps = 0.1
    sizes = [gama_step_size(t, 2 * eps, (60, 85), 10.0) for t in range(100)]
    assert sizes[0] == sizes[59] == pytest.approx(0.2)
    assert sizes[60] == sizes[84] == pytest.approx(0.02)
    assert sizes[85] == sizes[99] == pytest.approx(0.002)
    probs = torch.tensor([[0.1, 0.7, 0.2]])
    assert softmax_margin(probs, torch.tensor([1])).item() == pytest.approx(-0.5)


def test_pgd_trace_reports_seconds_per_readout():
    model = tiny_cnn()
    x, y = batch()
    seconds = {}
    pgd_trace(model, x, y, eps=0.1, steps=6, step_size=0.02, readout=(2, 6), readout_seconds=seconds)
    assert set(seconds) == {2, 6} and 0 <= seconds[2] <= seconds[6]


def test_attacks_are_deterministic_given_a_generator():
    model = tiny_cnn()
    x, y = batch()
    a = gama_pgd(model, x, y, eps=0.1, steps=5, generator=torch.Generator().manual_seed(3))
    b = gama_pgd(model, x, y, eps=0.1, steps=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_gama_guide_reference_defaults_to_the_start_point():
    # reference details: "a squared-L2 term between the softmax at the current point and at the
    # start point"; the clean-image reference stays available
    model = tiny_cnn()
    x, y = batch()
    run = lambda **kw: gama_pgd(model, x, y, eps=0.1, steps=5, generator=torch.Generator().manual_seed(3), **kw)  # noqa: E731
    default, start, clean = run(), run(reference="start"), run(reference="clean")
    assert torch.equal(default, start) and not torch.equal(default, clean)
