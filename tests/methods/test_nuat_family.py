"""Behaviour of the NuAT family's training step (alternation, Eq. 2, NuAT2-WA, hybrid switch)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nuat.methods.nuat as nuat_module
from nuat.methods import build_method
from nuat.methods.base import StepContext
from nuat.projections import check_linf


def model_and_batch(seed=0, m=32):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 10))
    g = torch.Generator().manual_seed(seed)
    return model.train(), torch.rand(m, 1, 8, 8, generator=g), torch.randint(0, 10, (m,), generator=g)


def ctx(batch_index=0, epoch=1, lam=2.0, averages=None, seed=0):
    return StepContext(epoch=epoch, epochs=4, batch_index=batch_index, iteration=batch_index, eps=0.1, lam=lam,
                       generator=torch.Generator().manual_seed(seed), averages=averages or {})


@pytest.fixture
def recorded(monkeypatch):
    calls = []
    real = nuat_module.nuclear

    def spy(model, x, y, **kw):
        calls.append(kw)
        return real(model, x, y, **kw)

    monkeypatch.setattr(nuat_module, "nuclear", spy)
    return calls


def test_attack_nuclear_term_alternates_but_training_loss_keeps_it(recorded):
    model, x, y = model_and_batch()
    method = build_method("nuat")
    for i in range(4):
        out = method.loss(model, x, y, ctx(batch_index=i, lam=2.0))
        assert out.sums["reg"] > 0
    assert [c["lam"] for c in recorded] == [2.0, 0.0, 2.0, 0.0]
    assert all(c["steps"] == 1 for c in recorded)


def test_reference_logits_are_train_mode_clean_logits(recorded):
    model, x, y = model_and_batch()
    build_method("nuat").loss(model, x, y, ctx())
    with torch.no_grad():
        expected = model.train()(x)  # BatchNorm batch statistics: train mode
    # the running stats moved but batch-statistics logits do not depend on them
    assert torch.allclose(recorded[0]["reference_logits"], expected, atol=1e-5)


def test_training_loss_is_equation_2():
    model, x, y = model_and_batch()
    method = build_method("nuat")
    out = method.loss(model, x, y, ctx(lam=3.0))
    with torch.no_grad():
        logits = model(x)
        logits_adv = model(out.x_adv)
    nuc = np.linalg.svd((logits_adv - logits).double().numpy(), compute_uv=False).sum() / x.shape[0]
    expected = F.cross_entropy(logits, y).item() + 3.0 * nuc
    assert out.loss.item() == pytest.approx(expected, rel=1e-4)
    check_linf(out.x_adv, x, 0.1)
    assert out.passes == (3, 1, 2)


def _grouped_attack_reference(model, x, y, *, lam, group, eps=0.1, seed=0):
    """Eq. 1's signed step with the nuclear term summed over row groups, written out here:
    Bernoulli start from the same generator, eval-mode gradient, step eps, projection."""
    from nuat.projections import bernoulli_start
    with torch.no_grad():
        ref = model.train()(x)
    x0 = bernoulli_start(x, eps / 2, torch.Generator().manual_seed(seed)).requires_grad_(True)
    model.eval()
    z = model(x0)
    diff = z - ref
    nuc = sum(torch.linalg.svdvals(d.double()).sum() for d in torch.split(diff, group)) / x.shape[0]
    (F.cross_entropy(z, y) + lam * nuc).backward()
    model.train()
    step = x0.detach() + eps * x0.grad.sign()
    return torch.min(torch.max(step, x - eps), x + eps).clamp(0, 1)


def test_nuclear_group_size_reaches_the_attack(recorded):
    # --fast's groups of 64 must set the scale of Eq. 1 (the attack) as well as Eq. 2; with the
    # whole batch as one matrix the attack's nuclear term would be ~sqrt(M / G) times weaker
    model, x, y = model_and_batch(m=32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = build_method("nuat", nuclear_group_size=8).loss(model, x, y, ctx(lam=40.0))
    assert recorded[0]["group_size"] == 8
    model.load_state_dict(state)
    grouped = _grouped_attack_reference(model, x, y, lam=40.0, group=8)
    model.load_state_dict(state)
    whole = _grouped_attack_reference(model, x, y, lam=40.0, group=32)
    assert (grouped != whole).any()  # the group size changes the attack on this batch
    torch.testing.assert_close(out.x_adv, grouped, rtol=0, atol=1e-6)


def test_gradients_flow_through_clean_and_adversarial_passes():
    model, x, y = model_and_batch()
    out = build_method("nuat").loss(model, x, y, ctx(lam=1.0))
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_nuat2_takes_two_steps_and_nuat2_wa_first_step_on_fast_average(recorded):
    model, x, y = model_and_batch()
    build_method("nuat2").loss(model, x, y, ctx())
    assert recorded[-1]["steps"] == 2 and recorded[-1]["first_step_model"] is None
    fast = nn.Sequential(*[m for m in model_and_batch(seed=1)[0]]).eval()
    method = build_method("nuat2-wa")
    method.loss(model, x, y, ctx(epoch=0, averages={"fast": fast}))
    assert recorded[-1]["first_step_model"] is None  # first epoch: the current model takes both steps
    out = method.loss(model, x, y, ctx(epoch=1, averages={"fast": fast}))
    assert recorded[-1]["first_step_model"] is fast
    with torch.no_grad():
        assert torch.allclose(recorded[-1]["first_step_reference"], fast(x))
    assert out.passes == (5, 2, 2)  # the fast average's own clean pass counts as a forward
    out = method.loss(model, x, y, ctx(batch_index=1, epoch=1, averages={"fast": fast}))
    assert recorded[-1]["first_step_reference"] is None and out.passes == (4, 2, 2)  # CE-only first step


def test_rollback_remedy_epoch_counts_as_two_step_in_the_hybrid_bookkeeping(recorded):
    model, x, y = model_and_batch()
    method = build_method("nuat-h", switch_threshold=0.5)
    method.previous_mean_clean_loss = 1e-9  # no batch would switch by itself
    method.set_remedy(True)
    method.start_epoch(3)
    for i in range(2):
        method.loss(model, x, y, ctx(batch_index=i))
    summary = method.end_epoch({})
    assert [c["steps"] for c in recorded] == [2, 2]
    assert summary["switch_batches"] == [0, 1] and summary["effective_two_step_epochs"] == pytest.approx(1.0)
    assert summary["switch_reference_loss"] > 1e-9  # the redone epoch's own mean clean loss


def test_hybrid_switches_on_clean_loss_drop_and_counts_effective_epochs(recorded):
    model, x, y = model_and_batch()
    method = build_method("nuat-h", switch_threshold=0.5)
    method.start_epoch(0)
    method.loss(model, x, y, ctx(batch_index=0, epoch=0))
    method.loss(model, x, y, ctx(batch_index=1, epoch=0))
    first = method.end_epoch({})
    assert first["two_step_batches"] == 0 and [c["steps"] for c in recorded] == [1, 1]
    # pretend the previous epoch's mean clean loss was far higher: every batch now "drops"
    method.previous_mean_clean_loss = 1e6
    method.start_epoch(1)
    method.loss(model, x, y, ctx(batch_index=0))
    method.previous_mean_clean_loss = 1e-9  # no drop: single step again
    method.loss(model, x, y, ctx(batch_index=1))
    second = method.end_epoch({})
    assert [c["steps"] for c in recorded[2:]] == [2, 1]
    assert second["switch_batches"] == [0] and second["two_step_batches"] == 1
    assert second["effective_two_step_epochs"] == pytest.approx(0.5)
    restored = build_method("nuat-h")
    restored.load_state_dict(method.state_dict())
    assert restored.state_dict() == method.state_dict()


def test_equation_2_gradient_flows_through_both_passes_of_the_nuclear_term():
    # Eq. 2's gradient w.r.t. the weights, the adversarial batch held fixed, from an independent
    # formula (SVD singular values); the regulariser differentiates through f(X~) AND f(X)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10)).train()
    _, x, y = model_and_batch()
    out = build_method("nuat").loss(model, x, y, ctx(lam=3.0))
    params = list(model.parameters())
    grads = torch.autograd.grad(out.loss, params)
    logits, logits_adv = model(x), model(out.x_adv)
    reference = F.cross_entropy(logits, y) + 3.0 * torch.linalg.svdvals((logits_adv - logits).double()).sum() / 32
    expected = torch.autograd.grad(reference, params)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e.float(), rtol=1e-4, atol=1e-6)
    # the per-batch sums are batch SUMS (the loop divides by the epoch's n)
    assert out.sums["ce"].item() == pytest.approx(32 * F.cross_entropy(logits, y).item(), rel=1e-5)
    assert out.sums["reg"].item() == pytest.approx(torch.linalg.svdvals((logits_adv - logits).double()).sum().item(),
                                                   rel=1e-4)


def test_hybrid_reference_is_the_mean_clean_loss_of_the_previous_epoch():
    method = build_method("nuat-h", switch_threshold=0.5)
    method.start_epoch(0)
    losses = []
    for i in range(3):
        model, x, y = model_and_batch(seed=i)
        with torch.no_grad():
            losses.append(F.cross_entropy(model(x), y).item())
        method.loss(model, x, y, ctx(batch_index=i, epoch=0))
    summary = method.end_epoch({})
    assert summary["switch_reference_loss"] == pytest.approx(sum(losses) / 3, rel=1e-5)
