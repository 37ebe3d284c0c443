import pytest
import torch

from nuat.errors import UsageError
from nuat.projections import ThreatModelViolation, bernoulli_start, check_linf, parse_eps, project_linf


@pytest.mark.parametrize("text,value", [("8/255", 8 / 255), ("0.3", 0.3), (0.1, 0.1), ("1", 1.0), (" 4/255 ", 4 / 255)])
def test_parse_eps_accepts(text, value):
    assert parse_eps(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["0", "-0.1", "1.5", "abc", "8/0", "nan", "300/255"])
def test_parse_eps_rejects_with_one_line(text):
    with pytest.raises(UsageError) as err:
        parse_eps(text)
    assert "\n" not in str(err.value) and repr(text) in str(err.value)


def test_project_linf_and_check():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 5, 5, generator=g)
    far = x + 3 * torch.randn(4, 1, 5, 5, generator=g)
    p = project_linf(far, x, 0.1)
    check_linf(p, x, 0.1)
    assert (p - x).abs().max() <= 0.1 + 1e-7 and p.min() >= 0 and p.max() <= 1
    with pytest.raises(ThreatModelViolation):
        check_linf(far, x, 0.1)
    with pytest.raises(ThreatModelViolation):
        check_linf(torch.clamp(x + 0.05, max=1.2) * 0 + 1.01, torch.ones_like(x), 0.1)


def test_bernoulli_start_magnitude_and_box():
    x = torch.full((2, 3, 8, 8), 0.5)
    s = bernoulli_start(x, 0.1, torch.Generator().manual_seed(0))
    assert torch.allclose((s - x).abs(), torch.full_like(x, 0.1))
    frac_up = ((s - x) > 0).float().mean().item()
    assert 0.35 < frac_up < 0.65
    edge = bernoulli_start(torch.zeros(2, 1, 4, 4), 0.2, torch.Generator().manual_seed(0))
    assert edge.min() >= 0


def test_check_linf_refuses_nan_and_a_batch_just_outside_the_ball():
    x = torch.full((2, 1, 3, 3), 0.5)
    check_linf(x + 0.1, x, 0.1)  # on the sphere: allowed
    with pytest.raises(ThreatModelViolation, match="from the clean one"):
        check_linf(x + 0.15, x, 0.1)  # 1.5 eps, inside the box
    nan = x.clone()
    nan[0, 0, 1, 1] = float("nan")  # NaN compares False with every bound: it must not slip through
    with pytest.raises(ThreatModelViolation, match="NaN"):
        check_linf(nan, x, 0.1)
    with pytest.raises(ThreatModelViolation):
        check_linf(torch.full_like(x, float("inf")), x, 0.1)


def test_check_linf_reads_the_device_once():
    """It read four values one by one (finite, distance, min, max): four host waits per batch."""
    from nuat.bench.host_reads import record_host_reads

    x = torch.rand(4, 1, 5, 5)
    x_adv = project_linf(x + 0.05 * torch.randn_like(x), x, 0.1)
    reads = record_host_reads(lambda: check_linf(x_adv, x, 0.1))
    # the four figures now come back in one tolist() of a 4-vector, which on the CPU copies
    # nothing the recorder counts; the scalar reads it did count are gone (four before)
    assert reads == [], reads
    with pytest.raises(ThreatModelViolation, match="NaN or Inf"):
        check_linf(torch.full_like(x, float("nan")), x, 0.1)
    check_linf(x[:0], x[:0], 0.1)  # an empty batch passes
