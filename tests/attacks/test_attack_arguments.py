"""What the attacks do with arguments a library user gets slightly wrong: labels of another integer
width work (and give the int64 result), everything else is one ValueError naming the value, raised
before any model pass (no traceback from deep inside torch, no silently wrong batch)."""

import pytest
import torch

from nuat.attacks import autoattack, fgsm, gama_pgd, ifgsm, nuclear, pgd, pgd_trace, square, targeted_pgd
from nuat.projections import check_linf
from nuat_testing import edge_batch as batch, tiny_cnn

GEN = lambda: torch.Generator().manual_seed(0)  # noqa: E731
ATTACKS = {
    "fgsm": lambda m, x, y, e: fgsm(m, x, y, eps=e),
    "ifgsm": lambda m, x, y, e: ifgsm(m, x, y, eps=e, steps=3),
    "pgd": lambda m, x, y, e: pgd(m, x, y, eps=e, steps=3, generator=GEN()),
    "pgd_trace": lambda m, x, y, e: pgd_trace(m, x, y, eps=e, steps=3, step_size=0.1, generator=GEN())[0],
    "nuclear": lambda m, x, y, e: nuclear(m, x, y, eps=e, lam=4.0, generator=GEN()),
    "gama_pgd": lambda m, x, y, e: gama_pgd(m, x, y, eps=e, steps=3, generator=GEN()),
    "targeted_pgd": lambda m, x, y, e: targeted_pgd(m, x, y, eps=e, steps=3, targets=2, generator=GEN()),
}
AA = {
    "autoattack": lambda m, x, y, e: autoattack(m, x, y, eps=e),
    "square": lambda m, x, y, e: square(m, x, y, eps=e, queries=20),
}


def _all():
    names = dict(ATTACKS)
    try:
        import pyautoattack  # noqa: F401
        names.update(AA)
    except ImportError:
        pass
    return names


@pytest.mark.parametrize("name", sorted(set(_all()) - {"autoattack"}))  # autoattack: below, once
@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8])
def test_labels_of_another_integer_width_give_the_int64_result(name, dtype):
    # int32 failed in cross_entropy ("expected target dtype to be Long or Byte") and in the
    # package's index_put (square); uint8 failed in GAMA's gather and the targeted scatter
    attack = _all()[name]
    model = tiny_cnn()
    x, y = batch(n=8)
    want = attack(model, x, y, 0.1)
    got = attack(model, x, y.to(dtype), 0.1)
    check_linf(got, x, 0.1)
    assert torch.equal(got, want)


@pytest.mark.parametrize("name", sorted(_all()))
@pytest.mark.parametrize("case, match", [
    ("float labels", "labels must be an integer tensor"),
    ("bool labels", "labels must be an integer tensor"),
    ("(B, 1) labels", r"labels must have shape \(B,\) = \(8,\).*got \(8, 1\)"),
    ("too few labels", r"labels must have shape \(B,\) = \(8,\).*got \(7,\)"),
    ("uint8 images", "inputs must be a floating-point tensor.*uint8"),
    ("negative eps", "eps must be a finite number >= 0.*-0.1"),
    ("nan eps", "eps must be a finite number >= 0.*nan"),
    ("string eps", "eps must be a number.*'8/255'.*parse_eps"),
])
def test_bad_arguments_raise_one_value_error_before_the_model_runs(name, case, match):
    # before: a negative eps swapped the projection's min and max and returned points 0.1 away
    # from the inputs (outside the ball) without a word; (B, 1) labels broadcast against (B,)
    # predictions in AutoAttack; the rest were tracebacks from inside torch
    x, y = batch(n=8)
    eps = 0.1
    if case == "float labels":
        y = y.float()
    elif case == "bool labels":
        y = y > 0
    elif case == "(B, 1) labels":
        y = y[:, None]
    elif case == "too few labels":
        y = y[:7]
    elif case == "uint8 images":
        x = (x * 255).to(torch.uint8)
    elif case == "negative eps":
        eps = -0.1
    elif case == "nan eps":
        eps = float("nan")
    elif case == "string eps":
        eps = "8/255"
    calls = []
    model = tiny_cnn()
    model.register_forward_hook(lambda *a: calls.append(1))
    with pytest.raises(ValueError, match=match):
        _all()[name](model, x, y, eps)
    assert calls == []


def test_autoattack_takes_int32_labels():
    # failed inside pyautoattack: "Index put requires the source and destination dtypes match"
    pytest.importorskip("pyautoattack")
    model = tiny_cnn()
    x, y = batch(n=8)
    x_adv = autoattack(model, x, y.int(), eps=1.0)  # the whole box: every example falls to APGD-CE
    check_linf(x_adv, x, 1.0)
    with torch.no_grad():
        assert (model(x_adv).argmax(1) != y).all()


def test_zero_eps_and_numpy_eps_are_accepted():
    np = pytest.importorskip("numpy")
    model = tiny_cnn()
    x, y = batch(n=8)
    assert torch.equal(fgsm(model, x, y, eps=0.0), x)
    check_linf(pgd(model, x, y, eps=np.float32(0.1), steps=2), x, 0.1)


@pytest.mark.parametrize("name, call", [
    ("pgd", lambda m, x, y: pgd(m, x, y, eps=0.1, steps=2, loss="foo")),
    ("targeted_pgd", lambda m, x, y: targeted_pgd(m, x, y, eps=0.1, steps=2, loss="foo")),
])
@pytest.mark.parametrize("n", [8, 0])
def test_an_unknown_loss_is_refused_before_any_model_pass(name, call, n):
    """targeted_pgd ranked its targets with a model pass first; both took any name on an empty batch."""
    x, y = batch(n=8)
    calls = []
    model = tiny_cnn()
    model.register_forward_hook(lambda *a: calls.append(1))
    with pytest.raises(ValueError, match="unknown .*loss 'foo'"):
        call(model, x[:n], y[:n])
    assert calls == []


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_inputs_made_under_inference_mode_are_attacked(name):
    """fgsm and nuclear raised torch's 'inference tensor' error (requires_grad on such a tensor)."""
    model = tiny_cnn()
    x, y = batch(n=8)
    with torch.inference_mode():
        x_inf, y_inf = x.clone(), y.clone()
    got = ATTACKS[name](model, x_inf, y_inf, 0.1)
    check_linf(got, x, 0.1)
    assert torch.equal(got, ATTACKS[name](model, x, y, 0.1))
