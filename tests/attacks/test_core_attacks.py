"""Bounds and closed-form checks for the attacks the foundation needs (FGSM, I-FGSM, PGD, NuAT)."""

import pytest
import torch
from torch import nn

from nuat.attacks import fgsm, gama_pgd, ifgsm, nuclear, pgd, pgd_trace, targeted_pgd
from nuat_testing import Linear, check_attack_on_edge_batch, edge_batch as batch, tiny_cnn




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
    check_attack_on_edge_batch(ATTACKS[name], eps)


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


def test_input_gradient_freezes_a_compiled_models_parameters_and_restores_them():
    from nuat.attacks.common import input_gradient, is_compiled
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    model[0].bias.requires_grad_(False)  # a parameter frozen by the caller stays frozen
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="eager")
    assert is_compiled(compiled) and not is_compiled(model)
    seen = []
    x = torch.randn(4, 8)
    grad = input_gradient(compiled, x, lambda z: (seen.append([p.requires_grad for p in model.parameters()]), z.sum())[1])
    assert seen == [[False] * 4] and grad.shape == x.shape
    assert [p.requires_grad for p in model.parameters()] == [True, False, True, True]
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(RuntimeError, match="boom"):
        input_gradient(compiled, x, lambda z: (_ for _ in ()).throw(RuntimeError("boom")))
    assert [p.requires_grad for p in model.parameters()] == [True, False, True, True]
    torch._dynamo.reset()


def test_input_gradient_of_an_eager_model_leaves_weights_trainable_and_computes_no_weight_gradient():
    # Eager autograd computes only what torch.autograd.grad asks for, so freezing would add nothing
    # but would defeat autocast's cache of bf16 weight copies (every attack forward casting again).
    from torch.profiler import ProfilerActivity, profile

    from nuat.attacks.common import frozen_parameters, input_gradient
    torch.manual_seed(0)
    model = tiny_cnn()
    x, _ = batch(n=8)
    seen = []
    grad = input_gradient(model, x, lambda z: (seen.append(all(p.requires_grad for p in model.parameters())), z.sum())[1])
    assert seen == [True] and all(p.grad is None for p in model.parameters())

    def ops(fn):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        return sorted(e.name for e in prof.events() if e.name.startswith("aten::"))

    def frozen_call():
        with frozen_parameters(model):
            return input_gradient(model, x, lambda z: z.sum())

    # the same operators as with every weight frozen: no weight gradient is computed
    assert ops(lambda: input_gradient(model, x, lambda z: z.sum())) == ops(frozen_call)
    torch.testing.assert_close(frozen_call(), grad, rtol=0, atol=0)
    # under autocast, after a forward in the same region (a training step's clean pass), the
    # attack's forward reuses the cached bf16 weights; frozen, it cast them again
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
        cached = ops(lambda: input_gradient(model, x, lambda z: z.float().sum())).count("aten::_to_copy")
        model(x)
        with frozen_parameters(model):
            recast = ops(lambda: input_gradient(model, x, lambda z: z.float().sum())).count("aten::_to_copy")
    assert cached < recast


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


# --- mutation-testing additions: I-FGSM steps, PGD accounting and restarts, NuAT2-WA's two steps ----

def _binary_linear(seed=0, n=8, bias=0.0):
    """Two classes, inputs in [0.25, 0.75] (an eps-ball of 0.1 never meets the box); for label 0 the
    CE grows fastest along ``s = sign(w1 - w0)`` per pixel, whatever the point."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(2, 16, generator=g, dtype=torch.float64)
    model = Linear(w, torch.tensor([bias, 0.0], dtype=torch.float64))
    x = 0.25 + 0.5 * torch.rand(n, 1, 4, 4, generator=g, dtype=torch.float64)
    s = torch.sign(w[1] - w[0]).view(1, 1, 4, 4)
    return model, x, torch.zeros(n, dtype=torch.long), s


@pytest.mark.parametrize("steps,step_size", [(7, None), (3, None), (5, 0.1)])
def test_ifgsm_walks_all_its_steps_up_the_loss_to_the_corner(steps, step_size):
    # the default step eps/steps reaches the eps-ball's worst corner exactly after the last step
    # only; steps larger than eps/steps must still be projected onto the ball around the CLEAN input
    model, x, y, s = _binary_linear()
    x_adv = ifgsm(model, x, y, eps=0.1, steps=steps, step_size=step_size)
    torch.testing.assert_close(x_adv, x + 0.1 * s, rtol=0, atol=1e-12)


class _FoolsAtIterate(nn.Module):
    """Two classes; whether example i is misclassified depends only on the iterate PGD has reached
    (no hidden call counter). From a start at the clean input, a small linear term in class 1
    makes every PGD step raise all pixels by ``step``: pixel 1 counts the steps from 0.5 and
    pixel 0 - pixel 1 names the example (0.1 apart). Example i is class 1 at iterate k iff i in
    ``wrong[k]``."""

    def __init__(self, wrong, step):
        super().__init__()
        self.wrong, self.step = wrong, step

    def forward(self, x):
        p = x.flatten(1)
        k = torch.round((p[:, 1] - 0.5) / self.step).long().tolist()
        i = torch.round((p[:, 0] - p[:, 1]) / 0.1).long().tolist()
        fooled = torch.tensor([e in self.wrong.get(n, ()) for e, n in zip(i, k)], dtype=x.dtype)
        z1 = 2 * fooled - 1 + 1e-3 * p.sum(1)  # the CE for class 0 grows with every pixel
        return torch.stack([torch.zeros_like(z1), z1], 1)


def test_pgd_trace_counts_an_example_broken_from_its_first_fooling_iterate_on():
    # example 0 is fooled at iterate 2 only, example 1 never, example 2 at iterates 0 and 3
    model = _FoolsAtIterate({2: [0], 0: [2], 3: [2]}, step=0.02)
    x = torch.full((3, 1, 1, 2), 0.5)
    x[:, 0, 0, 0] += 0.1 * torch.arange(3)
    y = torch.zeros(3, dtype=torch.long)
    x_adv, robust = pgd_trace(model, x, y, eps=0.1, steps=4, step_size=0.02, readout=(0, 1, 2, 3, 4),
                              random_start=False)
    assert [robust[n].tolist() for n in range(5)] == [[True, True, False], [True, True, False],
                                                      [False, True, False], [False, True, False],
                                                      [False, True, False]]
    # the returned batch: example 0 at its fooling iterate 2, example 1 at the last (4), example 2
    # at its first fooling iterate 0 (not the later one, 3)
    torch.testing.assert_close(x_adv - x, torch.tensor([0.04, 0.08, 0.0]).view(3, 1, 1, 1).expand_as(x))


def test_pgd_robust_examples_end_at_the_last_iterate_the_worst_corner():
    # bias 10 for class 0 (not saturated: the CE gradient keeps its sign): nothing flips at eps 0.1,
    # so every example is robust; from any uniform start, the default 20 steps of 2.5 eps / 20
    # reach the corner x + eps * s and PGD returns it
    model, x, y, s = _binary_linear(bias=10.0)
    x_adv = pgd(model, x, y, eps=0.1, steps=20, generator=torch.Generator().manual_seed(0))
    assert (model(x_adv).argmax(1) == 0).all()
    torch.testing.assert_close(x_adv, x + 0.1 * s, rtol=0, atol=1e-12)


def test_pgd_restarts_attack_only_the_still_robust_and_keep_the_first_fooling_restart(monkeypatch):
    # scripted pgd_trace: restart k fools the example with label k (label 3: never fooled) and
    # returns inputs + 0.01 * (k + 1), so the result shows which restart each example came from
    import importlib
    pgd_module = importlib.import_module("nuat.attacks.pgd")  # the package re-exports pgd, the function
    calls = []

    def scripted(model, inputs, labels, *, steps, **kw):
        k = len(calls)
        calls.append(labels.tolist())
        return inputs + 0.01 * (k + 1), {steps: labels != k}

    monkeypatch.setattr(pgd_module, "pgd_trace", scripted)
    x, y = torch.full((4, 1, 2, 2), 0.5), torch.arange(4)
    out = pgd(None, x, y, eps=0.1, steps=5, restarts=3)
    assert calls == [[0, 1, 2, 3], [1, 2, 3], [2, 3]]
    torch.testing.assert_close(out[:, 0, 0, 0], torch.tensor([0.51, 0.52, 0.53, 0.53]))


def _two_step_reference(model, first, x, y, *, eps, lam, first_ref, seed):
    """NuAT2-WA's attack written out: Bernoulli start (eps/2), step 1 on ``first`` (eval mode) up
    CE + lam * ||first(x0) - first_ref||_* / M, step 2 on ``model`` (eval mode) up CE alone, each
    a signed step of eps projected onto the eps-ball around x and [0, 1]."""
    import torch.nn.functional as F

    from nuat.projections import bernoulli_start
    first.eval()
    model.eval()
    x0 = bernoulli_start(x, eps / 2, torch.Generator().manual_seed(seed)).requires_grad_(True)
    z = first(x0)
    (g1,) = torch.autograd.grad(F.cross_entropy(z, y) + lam * torch.linalg.svdvals((z - first_ref).double()).sum()
                                / x.shape[0], x0)
    x1 = torch.min(torch.max(x0.detach() + eps * g1.sign(), x - eps), x + eps).clamp(0, 1).requires_grad_(True)
    (g2,) = torch.autograd.grad(F.cross_entropy(model(x1), y), x1)
    return torch.min(torch.max(x1.detach() + eps * g2.sign(), x - eps), x + eps).clamp(0, 1)


def test_nuat2_wa_attack_first_step_on_the_average_with_its_reference_second_on_the_model():
    model, first = tiny_cnn(seed=0, train=True), tiny_cnn(seed=1)
    x, y = batch(n=32)
    with torch.no_grad():
        own_ref = model(x)  # train-mode clean logits of the current model
        first_ref = first(x)
    out = nuclear(model, x, y, eps=0.1, lam=40.0, steps=2, reference_logits=own_ref, first_step_model=first,
                  first_step_reference=first_ref, generator=torch.Generator().manual_seed(0))
    assert model.training and not first.training
    expected = _two_step_reference(model, first, x, y, eps=0.1, lam=40.0, first_ref=first_ref, seed=0)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_nuclear_attack_without_reference_uses_the_eval_mode_clean_logits():
    model = tiny_cnn(seed=2)
    x, y = batch(n=32)
    run = lambda ref: nuclear(model, x, y, eps=0.1, lam=40.0, reference_logits=ref,  # noqa: E731
                              generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        clean = model.eval()(x)
    assert torch.equal(run(None), run(clean))
    assert not torch.equal(run(None), run(torch.zeros_like(clean)))  # the reference matters at lam 40


def test_pgd_trace_refuses_readouts_beyond_its_steps_and_targeted_pgd_zero_targets():
    model = tiny_cnn()
    x, y = batch()
    with pytest.raises(ValueError, match=r"readout steps .* \[11\]"):
        pgd_trace(model, x, y, eps=0.1, steps=10, step_size=0.02, readout=(5, 11))
    _, robust = pgd_trace(model, x, y, eps=0.1, steps=10, step_size=0.02, readout=(0, 10))
    assert sorted(robust) == [0, 10]
    with pytest.raises(ValueError, match="targets must be >= 1"):  # else the clean images come back as "adversarial"
        targeted_pgd(model, x, y, eps=0.1, steps=2, targets=0)
