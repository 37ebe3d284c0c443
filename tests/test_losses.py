import numpy as np
import pytest
import torch

from nuat.losses import margin_loss, nuclear_norm, nuat_objective


@pytest.mark.parametrize("m,c", [(64, 10), (7, 10), (3, 100), (128, 10)])
def test_nuclear_norm_matches_numpy_singular_values(m, c):
    g = torch.Generator().manual_seed(m * c)
    a, b = torch.randn(m, c, generator=g, dtype=torch.float64), torch.randn(m, c, generator=g, dtype=torch.float64)
    expected = np.linalg.svd((a - b).numpy(), compute_uv=False).sum() / m
    assert nuclear_norm(a, b).item() == pytest.approx(expected, rel=1e-10)


def test_nuclear_norm_gradient_matches_u_vt():
    # d||A||_*/dA = U V^T for full-rank A with distinct singular values
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 10, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(16, 10, dtype=torch.float64)
    nuclear_norm(a, b).backward()
    u, _, vt = np.linalg.svd(a.detach().numpy(), full_matrices=False)
    np.testing.assert_allclose(a.grad.numpy(), (u @ vt) / 16, rtol=1e-8, atol=1e-10)


def test_nuclear_norm_gradient_finite_with_repeated_and_zero_singular_values():
    a = torch.zeros(8, 10, dtype=torch.float64)
    a[0, 0] = a[1, 1] = 2.0  # two equal singular values, the rest zero
    a.requires_grad_(True)
    nuclear_norm(a, torch.zeros_like(a)).backward()
    assert torch.isfinite(a.grad).all()
    z = torch.zeros(8, 10, requires_grad=True)
    nuclear_norm(z, torch.zeros_like(z)).backward()
    assert torch.isfinite(z.grad).all()


def test_grouped_nuclear_norm_sums_groups_over_m():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(150, 10, generator=g, dtype=torch.float64)
    b = torch.zeros_like(a)
    groups = [a[i:i + 64].numpy() for i in range(0, 150, 64)]
    expected = sum(np.linalg.svd(x, compute_uv=False).sum() for x in groups) / 150
    assert nuclear_norm(a, b, group_size=64).item() == pytest.approx(expected, rel=1e-10)
    assert nuclear_norm(a, b, group_size=1000).item() == pytest.approx(nuclear_norm(a, b).item())


def test_nuat_objective_is_ce_plus_lambda_nuclear():
    g = torch.Generator().manual_seed(1)
    z, ref = torch.randn(5, 10, generator=g), torch.randn(5, 10, generator=g)
    y = torch.tensor([0, 1, 2, 3, 4])
    ce = torch.nn.functional.cross_entropy(z, y)
    assert nuat_objective(z, y, ref, 0.0).item() == pytest.approx(ce.item())
    expected = ce.item() + 2.5 * np.linalg.svd((z - ref).numpy(), compute_uv=False).sum() / 5
    assert nuat_objective(z, y, ref, 2.5).item() == pytest.approx(expected, rel=1e-5)


def test_margin_loss():
    z = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    y = torch.tensor([0, 0])
    assert margin_loss(z, y).tolist() == [-1.0, 5.0]


@pytest.mark.parametrize("b_shape, group", [((8, 1), None), ((8, 10, 1), None), ((4, 10), None), ((8, 10), 0),
                                            ((8, 10), -1), ((8, 10), 2.5), ((8, 10), True)])
def test_nuclear_norm_refuses_mismatched_shapes_and_bad_groups(b_shape, group):
    # (8, 1) against (8, 10) would broadcast into a wrong but finite value; group 0 or -1 would
    # fail deep inside with a ZeroDivisionError or a reshape error
    a = torch.randn(8, 10)
    with pytest.raises(ValueError, match="nuclear_norm needs|group_size"):
        nuclear_norm(a, torch.randn(*b_shape), group_size=group)


def test_nuat_objective_without_reference_is_a_clear_error():
    """lam != 0 with no reference was an AttributeError on None.shape from inside nuclear_norm."""
    z, y = torch.randn(4, 10), torch.arange(4)
    with pytest.raises(ValueError, match="reference_logits are needed when lam != 0"):
        nuat_objective(z, y, None, 1.0)
    assert torch.isfinite(nuat_objective(z, y, None, 0.0))
