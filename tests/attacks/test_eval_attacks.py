"""The evaluation attacks: eps-ball and box, closed-form oracles on linear models, schedules."""

import pytest
import torch

from nuat.attacks import gama_pgd, pgd, pgd_trace, square, targeted_pgd
from nuat.attacks.gama import gama_step_size, softmax_margin
from nuat.attacks.targeted import target_classes
from nuat.projections import check_linf
from nuat_testing import Linear, check_attack_on_edge_batch, edge_batch as batch, tiny_cnn




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
    check_attack_on_edge_batch(ATTACKS[name], eps)


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


# --- mutation-testing additions: GAMA's schedule and guide, targeted PGD's step, Square's budget,
# --- the AutoAttack wrapper's per-component accounting

def _robust_binary_linear(n=8, seed=2):
    """Two classes, label 0 with bias 10 (nothing flips at eps 0.1), inputs in [0.3, 0.7]; the loss of
    any attack grows fastest along ``s = sign(w1 - w0)`` per pixel, whatever the point."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(2, 16, generator=g, dtype=torch.float64)
    model = Linear(w, torch.tensor([10.0, 0.0], dtype=torch.float64))
    x = 0.3 + 0.4 * torch.rand(n, 1, 4, 4, generator=g, dtype=torch.float64)
    return model, x, torch.zeros(n, dtype=torch.long), torch.sign(w[1] - w[0]).view(1, 1, 4, 4)


def test_gama_first_step_of_two_eps_reaches_the_corner_from_any_sign_start():
    # published initial step 2 * eps: from x +- eps one step lands on x + eps * s whatever the start
    model, x, y, s = _robust_binary_linear()
    x_adv = gama_pgd(model, x, y, eps=0.1, steps=1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x_adv, x + 0.1 * s, rtol=0, atol=1e-12)


def test_gama_guide_term_is_zero_at_the_start_and_after_its_decay():
    # reference "start": the guide compares with the softmax at the start point, so at step 0 it has
    # zero gradient; its weight decays linearly to 0 at step guide_steps and stays 0 after
    model = tiny_cnn()
    x, _ = batch()
    with torch.no_grad():
        y = model(x).argmax(1)  # all correct: iterates that fool nobody early show the whole path

    def run(**kw):
        return gama_pgd(model, x, y, eps=0.03, generator=torch.Generator().manual_seed(5), **kw)

    unguided = run(steps=6, guide_weight=0.0)
    assert torch.equal(run(steps=6, guide_steps=1, guide_weight=1e4), unguided)  # zero from step 1 on, whatever w
    assert not torch.equal(run(steps=6, guide_steps=4), unguided)  # the guide does act before its end
    assert torch.equal(run(steps=1, reference="start"), run(steps=1, guide_weight=0.0))
    assert not torch.equal(run(steps=1, reference="clean"), run(steps=1, guide_weight=0.0))


def test_targeted_pgd_default_step_reaches_the_worst_corner():
    # default step 2.5 eps / steps: from a uniform start in the ball the run ends on x + eps * s
    model, x, y, s = _robust_binary_linear()
    x_adv = targeted_pgd(model, x, y, eps=0.1, steps=10, targets=None, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x_adv, x + 0.1 * s, rtol=0, atol=1e-12)


class _Counting(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.images = net, 0

    def forward(self, x):
        self.images += x.shape[0]
        return self.net(x)


def test_square_spends_its_query_budget_and_follows_its_seed():
    model, x, y, _ = _robust_binary_linear(n=2)
    counting = _Counting(model.float())
    x_adv = square(counting, x.float(), y, eps=0.1, queries=30)
    assert torch.equal(x_adv, x.float())  # robust: nothing found, the clean images come back
    assert 30 * 2 <= counting.images <= 50 * 2  # a few checks besides the 30 queries per image
    net = tiny_cnn()
    xb, yb = batch()
    a, b, c = (square(net, xb, yb, eps=0.3, queries=20, seed=s) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


class _FakeAdversary:
    """Stands in for pyautoattack.AutoAttack: image i (all pixels i / 100) is broken by the
    component that lists it; records which images each component was given."""

    BREAKS = {"apgd-ce": [1], "apgd-t": [2, 3], "fab-t": [], "square": [4]}

    def __init__(self):
        self.attacks_to_run, self.given = [], {}

    def run_standard_evaluation(self, x, y, batch_size):
        component = self.attacks_to_run[0]
        index = (x.flatten(1)[:, 0] * 100).round().long()
        self.given[component] = index.tolist()
        broken = torch.isin(index, torch.tensor(self.BREAKS[component], dtype=torch.long))
        adv = torch.where(broken.view(-1, 1, 1, 1), (x + 0.001).clamp(0, 1), x)
        return adv, torch.where(broken, (y + 1) % 3, y)


class _ByIndex(torch.nn.Module):
    """Predicts class 0 for images 1..7, class 1 for image 0 (labels are all 0); a broken image
    (pixels moved by 0.001) is predicted as class 2."""

    def forward(self, x):
        v = x.flatten(1)[:, 0] * 100
        index, moved = v.round(), (v - v.round()).abs() > 0.05
        pred = torch.where(moved, 2, torch.where(index == 0, 1, 0))
        return torch.nn.functional.one_hot(pred, 3).float()


def test_autoattack_components_attack_the_still_robust_and_read_out_cumulatively(monkeypatch):
    import importlib

    aa = importlib.import_module("nuat.attacks.autoattack")  # the module (nuat.attacks.autoattack is also a function)
    fake = _FakeAdversary()
    monkeypatch.setattr(aa, "build_adversary", lambda *a, **k: fake)
    x, y = (torch.arange(8.0) / 100).view(8, 1, 1, 1).expand(8, 1, 2, 2).clone(), torch.zeros(8, dtype=torch.long)
    result = aa.run_autoattack(_ByIndex(), x, y, eps=0.01)
    assert fake.given == {"apgd-ce": [1, 2, 3, 4, 5, 6, 7], "apgd-t": [2, 3, 4, 5, 6, 7], "fab-t": [4, 5, 6, 7],
                          "square": [4, 5, 6, 7]}
    robust = {c: [i for i, r in enumerate(f.tolist()) if r] for c, f in result.robust_after.items()}
    assert robust == {"apgd-ce": [2, 3, 4, 5, 6, 7], "apgd-t": [4, 5, 6, 7], "fab-t": [4, 5, 6, 7],
                      "square": [5, 6, 7]}
    moved = [i for i in range(8) if not torch.equal(result.adversarial[i], x[i])]
    assert moved == [1, 2, 3, 4]
    # Square broke an image the gradient attacks left robust: the package's own check says so
    assert any("Square Attack has decreased the robust accuracy" in f for f in result.flags)
    fake.BREAKS = {**_FakeAdversary.BREAKS, "square": []}
    assert not any("Square" in f for f in aa.run_autoattack(_ByIndex(), x, y, eps=0.01).flags)


def test_targeted_pgd_tries_each_target_not_only_the_most_likely_one():
    # label 0 (z0 = 0); class 1 is the most likely wrong class (z1 = -0.1, constant: never reached);
    # class 2 (z2 = sum(x) - 8.5 = -0.5 at x = 0.5) overtakes class 0 at x + 0.1
    w = torch.zeros(3, 16, dtype=torch.float64)
    w[2] = 1.0
    model = Linear(w, torch.tensor([0.0, -0.1, -8.5], dtype=torch.float64))
    x, y = torch.full((2, 1, 4, 4), 0.5, dtype=torch.float64), torch.zeros(2, dtype=torch.long)
    run = lambda k: targeted_pgd(model, x, y, eps=0.1, steps=5, targets=k, generator=torch.Generator().manual_seed(0))  # noqa: E731
    assert (model(run(None)).argmax(1) == 2).all() and (model(run(2)).argmax(1) == 2).all()
    assert (model(run(1)).argmax(1) == 0).all()
