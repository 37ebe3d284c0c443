"""The baselines' training steps: threat model, closed forms, TRADES by hand, AWP's restore, -wa aliases."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nuat.cli import build_parser
from nuat.cli.train_cmd import resolve_config
from nuat.errors import UsageError
from nuat.methods import METHODS, WA_TAU, build_method, get_method
from nuat.methods.awp import perturbed_weights
from nuat.methods.base import StepContext
from nuat.methods.gat import softmax_l2
from nuat.projections import check_linf
from nuat.train.schedules import lambda_ramp
from nuat_testing import Linear, edge_batch, tiny_cnn

BASELINES = ["erm", "fgsm-at", "rfgsm-at", "fbf", "gat", "pgd-at", "trades", "awp", "trades-awp"]


def context(eps, *, lam=0.0, batch_index=0, epoch=0, epochs=4, seed=0):
    return StepContext(epoch=epoch, epochs=epochs, batch_index=batch_index, iteration=batch_index, eps=eps,
                       lam=lam, generator=torch.Generator().manual_seed(seed))


def binary_linear(seed=0, d=16, m=12):
    """Two classes, inputs in [0.3, 0.7] (the box never binds at eps 0.1). For label y the loss grows
    fastest along ``s = sign(w[1 - y] - w[y])`` per pixel."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(2, d, generator=g, dtype=torch.float64)
    model = Linear(w, torch.zeros(2, dtype=torch.float64))
    x = 0.3 + 0.4 * torch.rand(m, 1, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (m,), generator=g)
    s = torch.sign(w[1 - y] - w[y]).reshape(m, 1, 4, 4)
    return model, x, y, s


# --- every registered method: threat model, cost, no gradient leaks ------------------------------

@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("eps", [8 / 255, 0.3])
def test_adversarial_batch_in_ball_and_box(name, eps):
    model, (x, y) = tiny_cnn(train=True), edge_batch(n=24)
    method = build_method(name)
    lam = method.defaults.lam_max
    before = {k: v.clone() for k, v in model.named_parameters()}
    for i in range(2):  # even and odd minibatches (alternating methods)
        out = method.loss(model, x, y, context(eps, lam=lam, batch_index=i))
        assert all(p.grad is None for p in model.parameters()), "the attack must not touch .grad"
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
        forwards, input_backwards, full_backwards = out.passes
        assert forwards >= 1 and full_backwards >= 1 and input_backwards >= 0
        assert forwards >= input_backwards + full_backwards  # every backward needs its forward
        method.after_step(model)
        if name == "erm":
            assert out.x_adv is None and out.passes == (1, 0, 1)
            continue
        check_linf(out.x_adv, x, eps)
        assert not torch.equal(out.x_adv, x), "the attack did not move"
        assert out.sums["n"] == y.shape[0]
    for key, value in model.named_parameters():  # weights untouched without an optimiser step
        assert torch.allclose(value, before[key], atol=1e-6), key
    assert model.training


@pytest.mark.parametrize("name", BASELINES)
def test_method_docstring_cites_its_paper(name):
    import inspect

    module = inspect.getmodule(type(build_method(name)))
    assert module.__doc__ and any(word in module.__doc__ for word in ("Sec.", "Algorithm", "section", "Eq.", "Table"))


# --- closed forms on a linear model ---------------------------------------------------------------

def test_fgsm_at_is_one_eps_step_from_the_clean_image():
    model, x, y, s = binary_linear()
    out = build_method("fgsm-at").loss(model, x, y, context(0.1))
    assert torch.allclose(out.x_adv, x + 0.1 * s)
    assert out.passes == (3, 1, 2)
    ce = F.cross_entropy(model(x), y)
    ce_adv = F.cross_entropy(model(x + 0.1 * s), y)
    assert out.loss.item() == pytest.approx((0.5 * ce + 0.5 * ce_adv).item())
    only_adv = build_method("fgsm-at", clean_weight=0.0).loss(model, x, y, context(0.1))
    assert only_adv.loss.item() == pytest.approx(ce_adv.item()) and only_adv.passes == (2, 1, 1)


def test_rfgsm_takes_a_random_half_step_then_the_gradient_half_step():
    model, x, y, s = binary_linear()
    out = build_method("rfgsm-at").loss(model, x, y, context(0.1))
    delta = out.x_adv - x
    # random +-eps/2 then +eps/2 along s: each pixel ends at 0 or at eps * s
    moved = delta.abs() > 1e-9
    assert torch.allclose(delta[moved], 0.1 * s[moved])
    assert torch.all(delta.abs()[~moved] < 1e-9)
    assert 0.3 < moved.double().mean() < 0.7  # about half the pixels agree with the random sign


def test_fbf_ends_on_the_gradient_side_of_every_pixel():
    model, x, y, s = binary_linear()
    out = build_method("fbf").loss(model, x, y, context(0.1))
    # uniform start in [-eps, eps] + 1.25 eps along s, clipped: at least 0.25 eps along s
    assert torch.all((out.x_adv - x) * s >= 0.025 - 1e-9)


def test_pgd_at_reaches_the_corner_of_the_ball():
    model, x, y, s = binary_linear()
    out = build_method("pgd-at").loss(model, x, y, context(0.1))  # 10 steps of eps/4 from any start
    assert torch.allclose(out.x_adv, x + 0.1 * s)
    assert out.loss.item() == pytest.approx(F.cross_entropy(model(x + 0.1 * s), y).item())
    assert out.passes == (11, 10, 1)


# --- TRADES and GAT losses by hand ------------------------------------------------------------------

def test_trades_loss_equals_hand_computation():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(5, 16, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    model = Linear(w, b)
    x = torch.rand(6, 1, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (6,), generator=g)
    out = build_method("trades", beta=6.0).loss(model, x, y, context(0.1))
    check_linf(out.x_adv, x, 0.1)

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    wn, bn = w.numpy(), b.numpy()
    p = softmax(x.reshape(6, -1).numpy() @ wn.T + bn)
    q = softmax(out.x_adv.reshape(6, -1).numpy() @ wn.T + bn)
    ce = -np.mean(np.log(p[np.arange(6), y.numpy()]))
    kl = np.sum(p * (np.log(p) - np.log(q))) / 6
    assert kl > 0
    assert out.loss.item() == pytest.approx(ce + 6.0 * kl, rel=1e-9)
    assert out.sums["reg"].item() / 6 == pytest.approx(kl, rel=1e-9)
    assert out.passes == (13, 10, 2)
    # the attack maximised the KL: it beats the same budget spent in a random direction
    r = torch.sign(torch.randn(x.shape, generator=g, dtype=torch.float64))
    q_rand = softmax((x + 0.1 * r).clamp(0, 1).reshape(6, -1).numpy() @ wn.T + bn)
    assert kl > np.sum(p * (np.log(p) - np.log(q_rand))) / 6
    # gradients flow through both the clean and the adversarial pass (Algorithm 1, line 9)
    out.loss.backward()
    assert model.w.grad is not None and torch.isfinite(model.w.grad).all()


def test_gat_regulariser_and_attack_alternation():
    model, (x, y) = tiny_cnn(batchnorm=False, train=True), edge_batch(n=24)  # no running statistics moving between calls
    method = build_method("gat")
    assert method.defaults.lam_max == 10.0
    assert lambda_ramp(0, 8, lam_max=10.0, ramp_fraction=method.defaults.ramp_fraction) == 10.0
    out = method.loss(model, x, y, context(0.1, lam=10.0, batch_index=0))
    logits_clean, logits_adv = model(x), model(out.x_adv)
    reg = softmax_l2(logits_adv, logits_clean)
    diff = F.softmax(logits_adv, 1) - F.softmax(logits_clean, 1)
    assert reg.item() == pytest.approx((diff ** 2).sum(1).mean().item(), rel=1e-5)
    expected = F.cross_entropy(logits_clean, y) + 10.0 * reg
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # odd minibatch: the attack maximises CE only, so it differs from the regularised step
    even = method.loss(model, x, y, context(0.1, lam=10.0, batch_index=0, seed=5)).x_adv
    odd = method.loss(model, x, y, context(0.1, lam=10.0, batch_index=1, seed=5)).x_adv
    ce_only = build_method("gat", alternate=False).loss(model, x, y, context(0.1, lam=0.0, seed=5)).x_adv
    assert torch.equal(odd, ce_only) and not torch.equal(even, odd)


# --- AWP -------------------------------------------------------------------------------------------

def test_awp_perturbs_every_weight_by_gamma_of_its_norm_and_restores_it():
    model, (x, y) = tiny_cnn(train=True), edge_batch(n=24)
    method = build_method("awp", gamma=0.01)
    original = {k: v.clone() for k, v in model.named_parameters()}
    ctx = context(0.1)
    out = method.loss(model, x, y, ctx)
    names = [n for n, _ in perturbed_weights(model)]
    assert names == ["0.weight", "4.weight"]  # conv kernel and linear matrix; no biases, no BN scale
    for name, p in model.named_parameters():
        shift = (p.detach() - original[name]).norm().item()
        if name in names:
            assert shift == pytest.approx(0.01 * original[name].norm().item(), rel=1e-4), name
        else:
            assert shift == 0.0, name
    assert out.passes == (12, 10, 2)
    # the perturbation climbs the adversarial loss
    with torch.no_grad():
        perturbed_loss = F.cross_entropy(model(out.x_adv), y).item()
        saved = {n: p.clone() for n, p in model.named_parameters()}
        for n, p in model.named_parameters():
            p.copy_(original[n])
        clean_weights_loss = F.cross_entropy(model(out.x_adv), y).item()
        for n, p in model.named_parameters():
            p.copy_(saved[n])
    assert perturbed_loss > clean_weights_loss
    method.after_step(model)
    for name, p in model.named_parameters():
        assert torch.allclose(p, original[name], atol=1e-7), name
    with pytest.raises(RuntimeError):  # loss twice without a restore would stack perturbations
        method.loss(model, x, y, ctx)
        method.loss(model, x, y, ctx)


def test_awp_update_is_the_gradient_at_the_perturbed_weights_applied_to_the_original():
    model, (x, y) = tiny_cnn(train=True), edge_batch(n=24)
    method = build_method("awp")
    original = {k: v.clone() for k, v in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    out = method.loss(model, x, y, context(0.1))
    opt.zero_grad()
    out.loss.backward()  # gradient at w + v
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    opt.step()
    method.after_step(model)
    for name, p in model.named_parameters():
        assert torch.allclose(p, original[name] - 0.1 * grads[name], atol=1e-6), name


def test_awp_warmup_and_trades_base():
    model, (x, y) = tiny_cnn(train=True), edge_batch(n=24)
    method = build_method("trades-awp")
    assert method.warmup_fraction == 0.05 and method.hparams["beta"] == 6.0
    before = {k: v.clone() for k, v in model.named_parameters()}
    out = method.loss(model, x, y, context(0.1, epoch=0, epochs=40))  # epoch 0 < 0.05 * 40: warm-up
    assert out.passes == (13, 10, 2)
    assert all(torch.equal(p, before[k]) for k, p in model.named_parameters())
    method.after_step(model)
    out = method.loss(model, x, y, context(0.1, epoch=2, epochs=40))
    assert out.passes == (15, 10, 4)
    method.after_step(model)
    assert all(torch.allclose(p, before[k], atol=1e-7) for k, p in model.named_parameters())


def test_trades_awp_first_perturbs_in_epoch_10_of_200_like_the_authors():
    # csdongxian/AWP trades_AWP/train_trades_cifar.py: epochs 1..200, AWP when epoch >= awp_warmup = 10,
    # i.e. 9 warm-up epochs; ctx.epoch counts from 0, so AWP starts at ctx.epoch 9
    from nuat.methods.awp import first_awp_epoch
    assert first_awp_epoch(0.05, 200) == 10 and first_awp_epoch(0.05, 60) == 3 and first_awp_epoch(0.0, 7) == 1
    model, (x, y) = tiny_cnn(train=True), edge_batch(n=8)
    method = build_method("trades-awp")
    active = []
    for epoch in (0, 8, 9, 10, 199):
        before = {k: v.clone() for k, v in model.named_parameters()}
        out = method.loss(model, x, y, context(0.1, epoch=epoch, epochs=200))
        active.append(out.passes == (15, 10, 4))
        assert active[-1] != all(torch.equal(p, before[k]) for k, p in model.named_parameters())
        method.after_step(model)
    assert active == [False, False, True, True, True]
    assert build_method("awp").loss(model, x, y, context(0.1, epoch=0, epochs=200)).passes == (12, 10, 2)


# --- weight averaging as a switch, CLI flags -------------------------------------------------------

def test_wa_suffix_adds_an_average_to_any_method():
    entry = get_method("pgd-at-wa")
    assert entry.defaults.averages == {"ema": WA_TAU} and entry.build is get_method("pgd-at").build
    assert get_method("gat-wa").defaults.lam_max == 10.0
    assert get_method("nuat-wa") is METHODS["nuat-wa"]  # registered names keep their own defaults
    assert build_method("trades-wa").name == "trades-wa"
    with pytest.raises(UsageError, match="did you mean"):
        get_method("pgd-ta")


@pytest.mark.parametrize("name", ["nuat-wa-wa", "nuat2-wa-wa", "nuat-wa-h-wa"])
def test_wa_suffix_on_a_method_that_already_averages_is_refused(name, tmp_path):
    # -wa there would change nothing but the name, so the run would be filed as a method that
    # does not exist; a doubled suffix is a typo to refuse, naming the method that was meant
    with pytest.raises(UsageError, match=f"'{name[:-3]}' already keeps a weight average"):
        get_method(name)
    with pytest.raises(UsageError, match="already keeps a weight average"):
        cli_config(tmp_path, "--method", name)


def cli_config(tmp_path, *argv):
    args = build_parser().parse_args(["train", "--dataset", "fashion-mnist", "--out", str(tmp_path / "run"), *argv])
    return resolve_config(args)


def test_cli_wa_switch_equals_the_suffix(tmp_path):
    a = cli_config(tmp_path, "--method", "pgd-at", "--wa")
    b = cli_config(tmp_path, "--method", "pgd-at-wa")
    assert a.method == b.method == "pgd-at-wa"
    assert a.averages == b.averages == {"ema": WA_TAU} and a.scale_averages
    c = cli_config(tmp_path, "--method", "gat", "--wa", "--tau", "0.99")
    assert c.averages == {"ema": 0.99} and not c.scale_averages and c.lam_max == 10.0
    assert cli_config(tmp_path, "--method", "nuat-wa", "--wa").method == "nuat-wa"
    # NuAT-H with an average is the published NuAT-WA-H, with NuAT-WA's defaults, however spelled
    for argv in (("--method", "nuat-h", "--wa"), ("--method", "nuat-h-wa"), ("--method", "nuat-wa-h")):
        h = cli_config(tmp_path, *argv)
        assert (h.method, h.lam_max, h.lr_up) == ("nuat-wa-h", 4.0, 0.25)


def test_cli_lam_boost(tmp_path):
    assert cli_config(tmp_path, "--method", "gat").lam_boost == [0.86, 4.0]
    assert cli_config(tmp_path, "--method", "gat-wa").lam_boost == [0.86, 4.0]
    assert cli_config(tmp_path, "--method", "gat", "--lam-boost", "off").lam_boost is None
    assert cli_config(tmp_path, "--method", "nuat", "--lam-boost", "0.5,2").lam_boost == [0.5, 2.0]
    assert cli_config(tmp_path, "--method", "nuat").lam_boost is None
    for bad in (("--method", "gat", "--lam-boost", "0.5"), ("--method", "gat", "--lam-boost", "1.5,2"),
                ("--method", "gat", "--lam-boost", "x,y"), ("--method", "pgd-at", "--lam-boost", "0.5,2")):
        with pytest.raises(UsageError):
            cli_config(tmp_path, *bad)


def test_cli_lr_drops(tmp_path):
    gat = cli_config(tmp_path, "--method", "gat")
    assert gat.lr_drops == [0.71, 0.86] and cli_config(tmp_path, "--method", "gat-wa").lr_drops == [0.71, 0.86]
    assert cli_config(tmp_path, "--method", "nuat").lr_drops == []
    cyclic = cli_config(tmp_path, "--method", "gat", "--lr-drops", "none", "--lr-up", "0.4", "--lr-down", "0.6")
    assert (cyclic.lr_drops, cyclic.lr_up, cyclic.lr_down) == ([], 0.4, 0.6)
    assert cli_config(tmp_path, "--method", "pgd-at", "--lr-drops", "0.5,0.75").lr_drops == [0.5, 0.75]
    for bad, message in ((("--method", "gat", "--lr-up", "0.4"), "add --lr-drops none"),
                         (("--method", "nuat", "--lr-drops", "0.5", "--lr-down", "0.3"), "add --lr-drops none"),
                         (("--method", "gat", "--lr-drops", "0.9,0.5"), "increasing"),
                         (("--method", "gat", "--lr-drops", "0,0.5"), r"\(0, 1\]"),
                         (("--method", "gat", "--lr-drops", "half"), "--lr-drops 'half'")):
        with pytest.raises(UsageError, match=message):
            cli_config(tmp_path, *bad)


def test_published_taus_belong_to_each_methods_published_run(tmp_path):
    from nuat.train.ema import tau_for_run
    wa = cli_config(tmp_path, "--method", "nuat-wa")
    wa2 = cli_config(tmp_path, "--method", "nuat2-wa")
    assert wa.tau_steps == 100 * 766 and wa2.tau_steps == 80 * 766  # CIFAR-10, batch 64: E = 100 and E = 80
    # the published run lengths get the published taus exactly
    assert tau_for_run(0.9998, 100 * 766, published_steps=wa.tau_steps) == 0.9998
    assert [tau_for_run(t, 80 * 766, published_steps=wa2.tau_steps) for t in (0.9998, 0.99)] == [0.9998, 0.99]


def test_cli_method_hyperparameters(tmp_path):
    cfg = cli_config(tmp_path, "--method", "trades", "--beta", "3", "--attack-steps", "5", "--step-size", "1/50")
    assert cfg.method_hparams == {"beta": 3.0, "steps": 5, "step_size": 0.02}
    assert cli_config(tmp_path, "--method", "fbf").lr_up == 0.4 and cli_config(tmp_path, "--method", "fbf").lr_down == 0.6
    assert cli_config(tmp_path, "--method", "awp", "--awp-gamma", "0.01").method_hparams == {"gamma": 0.01}
    for argv, message in [(("--method", "pgd-at", "--beta", "3"), "--beta does not apply"),
                          (("--method", "trades", "--beta", "-1"), "beta must be"),
                          (("--method", "pgd-at", "--attack-steps", "0"), "takes 1 to 1000 attack steps"),
                          (("--method", "nuat", "--attack-steps", "3"), "1 or 2"),
                          (("--method", "fgsm-at", "--clean-weight", "1"), "clean_weight"),
                          (("--method", "pgd-at", "--lam-max", "2"), "regulariser weight"),
                          (("--method", "erm", "--tau", "0.9"), "--tau applies")]:
        with pytest.raises(UsageError, match=message):
            cli_config(tmp_path, *argv)


def test_passes_grow_with_attack_steps():
    assert build_method("pgd-at", steps=3).loss(*binary_linear()[:3], context(0.1)).passes == (4, 3, 1)
    assert math.isclose(WA_TAU, 0.9998)


def test_run_cost_sums_the_epochs_and_keeps_the_peak_memory(tmp_path):
    import json

    from nuat.train.loop import run_cost

    records = [{"epoch": 1, "seconds": 10.0, "images_per_s": 100.0, "forward_per_example": 11.0,
                "input_backward_per_example": 10.0, "full_backward_per_example": 1.0, "peak_memory_bytes": 5},
               {"epoch": 2, "seconds": 30.0, "images_per_s": 50.0, "forward_per_example": 11.0,
                "input_backward_per_example": 10.0, "full_backward_per_example": 1.0, "peak_memory_bytes": 7}]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    cost = run_cost(path, 99.0)
    assert cost == {"epochs": 2, "forward_per_example": 22.0, "input_backward_per_example": 20.0,
                    "full_backward_per_example": 2.0, "train_seconds": 40.0,
                    "images_per_s": pytest.approx(2500 / 40), "wall_seconds": 99.0, "peak_memory_bytes": 7}


# --- mutation-testing additions: gradients of the regularised losses, attack side effects ---------

def _weight_gradient_matches(model, out, reference_loss):
    params = list(model.parameters())
    grads = torch.autograd.grad(out.loss, params)
    expected = torch.autograd.grad(reference_loss, params)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12)


def _softmax_problem(seed=3):
    g = torch.Generator().manual_seed(seed)
    w, b = torch.randn(5, 16, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    model = Linear(w, b)
    x = torch.rand(6, 1, 4, 4, generator=g, dtype=torch.float64)
    return model, x, torch.randint(0, 5, (6,), generator=g)


def test_trades_gradient_flows_through_the_clean_and_the_adversarial_pass():
    # the published loss: CE + beta * KLDivLoss(sum)(log_softmax f(X~), softmax f(X)) / M, with
    # gradients through both forward passes (the adversarial batch held fixed)
    model, x, y = _softmax_problem()
    out = build_method("trades", beta=6.0).loss(model, x, y, context(0.1))
    logits, logits_adv = model(x), model(out.x_adv)
    kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits, 1), reduction="sum") / 6
    _weight_gradient_matches(model, out, F.cross_entropy(logits, y) + 6.0 * kl)


def test_gat_gradient_flows_through_the_clean_and_the_adversarial_pass():
    model, x, y = _softmax_problem()
    out = build_method("gat").loss(model, x, y, context(0.1, lam=10.0))
    logits, logits_adv = model(x), model(out.x_adv)
    reg = ((F.softmax(logits_adv, 1) - F.softmax(logits, 1)) ** 2).sum(1).mean()
    _weight_gradient_matches(model, out, F.cross_entropy(logits, y) + 10.0 * reg)


def test_fgsm_at_weighs_clean_and_adversarial_ce_by_clean_weight():
    model, x, y, s = binary_linear()
    out = build_method("fgsm-at", clean_weight=0.25).loss(model, x, y, context(0.1))
    ce, ce_adv = F.cross_entropy(model(x), y), F.cross_entropy(model(x + 0.1 * s), y)
    assert ce_adv > ce
    assert out.loss.item() == pytest.approx((0.25 * ce + 0.75 * ce_adv).item())


@pytest.mark.parametrize("name", ["pgd-at", "trades"])
def test_attacks_leave_batchnorm_statistics_alone_and_use_the_generator(name):
    # the attack runs in eval mode: its forward passes (the TRADES target included) must not move
    # the running statistics; its random start comes from the step's generator
    model, (x, y) = tiny_cnn(train=True), edge_batch(n=24)
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
    method = build_method(name)
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    attack = method.adversarial_batch
    a = attack(model, x, y, context(0.1, seed=1))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stats.items()) and model.training
    assert torch.equal(a, attack(model, x, y, context(0.1, seed=1)))
    assert not torch.equal(a, attack(model, x, y, context(0.1, seed=2)))
