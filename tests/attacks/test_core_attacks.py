"""Bounds and closed-form checks for the attacks the foundation needs (FGSM, I-FGSM, PGD, NuAT)."""

import pytest
import torch
from torch import nn

from nuat.attacks import fgsm, gama_pgd, ifgsm, nuclear, pgd, pgd_trace, targeted_pgd
from nuat.projections import check_linf
from nuat_testing import Linear, edge_batch as batch, tiny_cnn




ATTACKS = {
    "fgsm": lambda m, x, y, e: fgsm(m, x, y, eps=e),
    "ifgsm": lambda m, x, y, e: ifgsm(m, x, y, eps=e, steps=5),
    "pgd": lambda m, x, y, e: pgd(m, x, y, eps=e, steps=5, restarts=2),
    "pgd-margin": lambda m, x, y, e: pgd(m, x, y, eps=e, steps=5, loss="margin"),
    "nuclear": lambda m, x, y, e: nuclear(m, x, y, eps=e, lam=4.0),
    "nuclear-2step": lambda m, x, y, e: nuclear(m, x, y, eps=e, lam=4.0, steps=2),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("eps", [8 / 255, 0.3])
def test_attack_stays_in_ball_and_box(name, eps):
    model = tiny_cnn()
    x, y = batch()
    x_adv = ATTACKS[name](model, x, y, eps)
    check_linf(x_adv, x, eps)
    assert x_adv.dtype == x.dtype and x_adv.shape == x.shape


def test_fgsm_and_pgd_match_closed_form_on_binary_linear_model():
    # two classes: margin z_1 - z_0 = (w1 - w0).x + (b1 - b0) is maximised at x + eps*sign(w1 - w0)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2, 16, generator=g, dtype=torch.float64)
    model = Linear(w, torch.zeros(2, dtype=torch.float64))
    x = 0.25 + 0.5 * torch.rand(8, 1, 4, 4, generator=g, dtype=torch.float64)  # far from the box edges
    y = torch.zeros(8, dtype=torch.long)
    eps = 0.1
    best = x + eps * torch.sign(w[1] - w[0]).view(1, 1, 4, 4)
    assert torch.allclose(fgsm(model, x, y, eps=eps), best)
    # PGD's last iterate for the examples it cannot flip is the corner of the box
    x_adv, robust = pgd_trace(model, x, y, eps=eps, steps=10, step_size=0.03, readout=(10,))
    margin_best = (best.flatten(1) @ (w[1] - w[0]))
    flips = margin_best > 0
    assert torch.equal(~robust[10], flips)


def test_pgd_readout_is_monotone():
    model = tiny_cnn()
    x, y = batch(n=64)
    _, robust = pgd_trace(model, x, y, eps=0.3, steps=20, step_size=0.05, readout=(0, 5, 10, 20))
    counts = [int(robust[n].sum()) for n in (0, 5, 10, 20)]
    assert counts == sorted(counts, reverse=True)
    assert torch.equal(robust[0], model(x).argmax(1) == y)


def test_nuclear_attack_restores_mode_and_runs_in_eval():
    model = tiny_cnn().train()
    x, y = batch()
    seen = []
    model[1].register_forward_pre_hook(lambda mod, inp: seen.append(mod.training))
    nuclear(model, x, y, eps=0.1, lam=4.0, reference_logits=torch.zeros(16, 10))
    assert seen and not any(seen)
    assert model.training


def test_nuclear_attack_is_one_eps_step_from_bernoulli_start():
    # Sec. 5.1: start x + alpha * sign(U - 0.5) (alpha = eps/2 = 0.1), one signed step of eps = 0.2
    # on CE (lam = 0) taken AT THE START, projection to [-0.2, 0.2]. Per pixel, with s the start's
    # sign and g the step's: d = 0.2 g where they agree (0.3 clipped), d = 0.1 g where they differ.
    import torch.nn.functional as F

    from nuat.projections import bernoulli_start
    model = tiny_cnn()
    x = torch.full((8, 1, 8, 8), 0.5)
    y = torch.zeros(8, dtype=torch.long)
    x_adv = nuclear(model, x, y, eps=0.2, lam=0.0, generator=torch.Generator().manual_seed(0))
    d = x_adv - x
    start = bernoulli_start(x, 0.1, torch.Generator().manual_seed(0))  # the attack's first draw
    s = torch.sign(start - x)
    z = start.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(z), y), z)
    g = torch.sign(grad)
    assert (s != 0).all() and (g != 0).all()
    agree, differ = s == g, s == -g
    assert agree.sum() > 50 and differ.sum() > 50  # both cases occur (512 pixels)
    torch.testing.assert_close(d[agree], 0.2 * g[agree], rtol=0, atol=1e-6)
    torch.testing.assert_close(d[differ], 0.1 * g[differ], rtol=0, atol=1e-6)
    magnitudes = set(torch.round(d.abs().flatten() * 1000).unique().tolist())
    assert magnitudes == {100.0, 200.0}


@pytest.mark.parametrize("attack", [
    lambda m, x, y: ifgsm(m, x, y, eps=0.1, steps=0),
    lambda m, x, y: pgd(m, x, y, eps=0.1, steps=0),
    lambda m, x, y: pgd(m, x, y, eps=0.1, steps=5, restarts=0),
    lambda m, x, y: pgd_trace(m, x, y, eps=0.1, steps=-1, step_size=0.01),
    lambda m, x, y: pgd_trace(m, x, y, eps=0.1, steps=0, step_size=0.01),
    lambda m, x, y: targeted_pgd(m, x, y, eps=0.1, steps=0),
    lambda m, x, y: gama_pgd(m, x, y, eps=0.1, steps=0),
    lambda m, x, y: nuclear(m, x, y, eps=0.1, steps=0),
], ids=["ifgsm", "pgd", "pgd-restarts-0", "pgd_trace-neg", "pgd_trace-0", "targeted_pgd", "gama_pgd", "nuclear"])
def test_attacks_refuse_fewer_than_one_step(attack):
    # 0 steps divided by zero (default step eps / steps) or silently returned the random start
    model = tiny_cnn()
    x, y = batch(n=4)
    with pytest.raises(ValueError, match="(steps|restarts) must be >= 1, got -?[0-9]+"):
        attack(model, x, y)


def test_input_gradient_freezes_parameters_and_restores_them():
    from nuat.attacks.common import input_gradient
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    model[0].bias.requires_grad_(False)  # a parameter frozen by the caller stays frozen
    seen = []
    x = torch.randn(4, 8)
    grad = input_gradient(model, x, lambda z: (seen.append([p.requires_grad for p in model.parameters()]), z.sum())[1])
    assert seen == [[False] * 4] and grad.shape == x.shape
    assert [p.requires_grad for p in model.parameters()] == [True, False, True, True]
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(RuntimeError, match="boom"):
        input_gradient(model, x, lambda z: (_ for _ in ()).throw(RuntimeError("boom")))
    assert [p.requires_grad for p in model.parameters()] == [True, False, True, True]


def test_compiled_model_attack_backward_computes_only_the_input_gradient():
    # torch.compile runs one fixed backward graph: with trainable parameters it would compute
    # every weight gradient on each attack step, only to throw them away
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    from nuat.attacks.common import input_gradient
    backward_outputs = []

    def record_backward(gm, _):
        output = next(n for n in gm.graph.nodes if n.op == "output")
        backward_outputs.append(sum(a is not None for a in output.args[0]))
        return make_boxed_func(gm.forward)

    torch._dynamo.reset()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    compiled = torch.compile(model, backend=aot_autograd(fw_compiler=lambda gm, _: make_boxed_func(gm.forward),
                                                   bw_compiler=record_backward))
    x = torch.randn(4, 8)
    input_gradient(compiled, x, lambda z: z.sum())
    assert backward_outputs == [1]  # the input gradient, no weight gradient
    torch._dynamo.reset()


def test_input_gradient_backward_runs_without_autocast():
    from nuat.attacks.common import input_gradient
    from nuat.losses import nuclear_norm
    torch.manual_seed(0)
    model, x, ref = nn.Linear(20, 10), torch.randn(64, 20), torch.randn(64, 10)

    def objective(z):
        return nuclear_norm(z, ref, backend="svd")

    with torch.autocast("cpu", dtype=torch.bfloat16):
        grad = input_gradient(model, x, objective)
        xx = x.clone().requires_grad_(True)
        loss = objective(model(xx))  # the same bf16 forward
    (expected,) = torch.autograd.grad(loss, xx)  # backward outside autocast: float32
    assert torch.equal(grad, expected)
