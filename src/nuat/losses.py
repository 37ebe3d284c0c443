"""Loss terms as plain functions on tensors (logits are pre-softmax, shape (M, C))."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

__all__ = [
    "nuclear_norm", "nuat_objective", "margin_loss", "NUCLEAR_BACKENDS",
    "set_nuclear_backend", "nuclear_backend", "NEWTON_SCHULZ_FLOOR", "NEWTON_SCHULZ_COEFFICIENTS",
]

#: Ways to compute the sum of singular values (see :func:`nuclear_norm` and docs/speed.md):
#: ``svd``: ``torch.linalg.svdvals`` (LAPACK/cuSOLVER SVD; the reference);
#: ``gram``: eigenvalues of the small Gram matrix ``D^T D`` (C x C, or ``D D^T`` when M < C) in
#: float64, with the gradient ``D V diag(1/sigma) V^T = U V^T`` written out;
#: ``newton-schulz``: ``sum(U V^T * D)`` with the polar factor ``U V^T`` from a fixed number of
#: scaled Newton-Schulz steps (matrix products only: no solver call, no host synchronisation on
#: a GPU);
#: ``host-svd``: LAPACK's SVD of the difference copied to the host CPU in float64, with the
#: gradient ``U V^T`` copied back (on a GPU: one blocking copy each way and a CPU SVD of a few
#: thousand numbers instead of the device solver's kernels; on an H200 no faster than ``gram``
#: inside a training step, docs/speed.md);
#: ``auto``: ``svd`` on the CPU (fastest there, measured by ``nuat bench --nuclear``), ``gram`` on
#: other devices (one batched solver call for all groups).
NUCLEAR_BACKENDS = ("auto", "svd", "gram", "newton-schulz", "host-svd")

_default_backend = "auto"


def _check_backend(name: str) -> None:
    if name not in NUCLEAR_BACKENDS:
        raise ValueError(f"unknown nuclear-norm backend {name!r}; choose one of: {', '.join(NUCLEAR_BACKENDS)}")


def set_nuclear_backend(name: str) -> str:
    """Make ``name`` the backend of :func:`nuclear_norm` calls that do not name one; returns the
    previous default (the training loop leaves it at ``auto``; ``nuat bench`` compares them).
    Raises ``ValueError`` unless ``name`` is in ``NUCLEAR_BACKENDS``."""
    global _default_backend
    _check_backend(name)
    previous, _default_backend = _default_backend, name
    return previous


@contextlib.contextmanager
def nuclear_backend(name: str) -> Iterator[None]:
    """``with nuclear_backend("gram"): ...`` uses that backend inside the block (``ValueError`` for an
    unknown name)."""
    previous = set_nuclear_backend(name)
    try:
        yield
    finally:
        set_nuclear_backend(previous)


def _resolve_backend(name: str | None, device: torch.device) -> str:
    name = _default_backend if name is None else name
    _check_backend(name)
    if name == "auto":
        return "svd" if device.type == "cpu" else "gram"
    return name


def _pseudo_inverse_sqrt(s: torch.Tensor, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
    """``1 / s`` for singular values ``s`` (..., k) above the usual rank cutoff
    ``max(s) * max(rows, cols) * eps(dtype)``, 0 below it (the minimum-norm subgradient)."""
    cutoff = s.amax(dim=-1, keepdim=True) * (max(rows, cols) * torch.finfo(dtype).eps)
    return torch.where(s > cutoff, s.reciprocal(), torch.zeros_like(s))


class _GramNuclear(torch.autograd.Function):
    """Sum over a batch (..., M, C) of the singular values, from the eigenvalues of the k x k Gram
    matrix (k = min(M, C)) in float64. Backward: ``U V^T`` per matrix, as ``D V S^+ V^T`` (or
    ``U S^+ U^T D`` when M < C); singular values at the rank cutoff contribute 0, so the gradient
    stays finite for repeated or zero singular values."""

    @staticmethod
    def forward(ctx, d: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        dd = d.to(torch.float64)
        tall = d.shape[-2] >= d.shape[-1]
        gram = dd.mT @ dd if tall else dd @ dd.mT
        lam, vec = torch.linalg.eigh(gram)
        s = lam.clamp_min(0.0).sqrt()
        ctx.save_for_backward(dd, vec, s)
        ctx.tall, ctx.dtype = tall, d.dtype
        return s.sum().to(d.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        dd, vec, s = ctx.saved_tensors
        inv = _pseudo_inverse_sqrt(s, dd.shape[-2], dd.shape[-1], ctx.dtype)
        proj = (vec * inv.unsqueeze(-2)) @ vec.mT  # V S^+ V^T (k x k)
        g = dd @ proj if ctx.tall else proj @ dd
        return g.to(ctx.dtype) * grad


def _newton_schulz_coefficients(floor: float = 1e-7) -> tuple[tuple[float, float], ...]:
    """Coefficients ``(a_k, b_k)`` of the scaled Newton-Schulz polar iteration
    ``X <- a_k X - b_k X X^T X`` for matrices whose singular values lie in ``[floor, 1]``.

    Step k is the classic cubic ``1.5 y - 0.5 y^3`` applied to ``y = c_k x`` with
    ``c_k = sqrt(3 / (1 + l + l^2))``, the scaling that maps both ends of the current interval
    ``[l, 1]`` to the same value, so every singular value ends in ``[l', 1]`` with
    ``l' = 1.5 c_k l - 0.5 c_k^3 l^3`` (~2.6 l while l is small, against 1.5 l unscaled; then
    quadratic convergence). Stops when ``1 - l < 1e-15``: 22 steps for ``floor = 1e-7``."""
    steps, low = [], floor
    while 1.0 - low > 1e-15:
        c = math.sqrt(3.0 / (1.0 + low + low * low))
        steps.append((1.5 * c, 0.5 * c ** 3))
        low = 1.5 * c * low - 0.5 * c ** 3 * low ** 3
    return tuple(steps)


#: singular values above this fraction of a matrix's Frobenius norm converge to float64 precision
#: in the Newton-Schulz backend; smaller ones count with a weight in [0, 1)
#: (tests/bench/test_nuclear_backends.py checks both)
NEWTON_SCHULZ_FLOOR = 1e-7
NEWTON_SCHULZ_COEFFICIENTS = _newton_schulz_coefficients(NEWTON_SCHULZ_FLOOR)


class _NewtonSchulzNuclear(torch.autograd.Function):
    """Sum over a batch (..., M, C) of the singular values, as ``sum(P * D)`` with ``P = U V^T``
    the polar factor of each matrix, from the scaled Newton-Schulz iteration (see
    :func:`_newton_schulz_coefficients`) on ``D / ||D||_F`` in float64. Two small batched matrix
    products per step (``X^T X``, then one ``baddbmm``), 22 steps, no solver call and so no
    host synchronisation on a GPU. Backward: ``P`` itself. Zero singular values stay exactly zero
    in ``P`` (the minimum-norm subgradient), so the gradient is finite for repeated or zero ones."""

    @staticmethod
    def forward(ctx, d: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # float64: in float32 the iteration would stall on singular values near sqrt(eps) * max
        dd = d.to(torch.float64).reshape(-1, *d.shape[-2:])
        tall = dd.shape[-2] >= dd.shape[-1]
        norm = torch.linalg.matrix_norm(dd).clamp_min(torch.finfo(torch.float64).tiny)
        x = dd / norm[:, None, None]
        # torch.bmm, not @: matmul's broadcasting adds ~10 dispatcher calls per step (440 against
        # 220 per norm), and on a GPU the step is bound by the host's dispatch of such small ops
        for a, b in NEWTON_SCHULZ_COEFFICIENTS:
            if tall:
                x = torch.baddbmm(x, x, torch.bmm(x.mT, x), beta=a, alpha=-b)  # X (a I - b X^T X)
            else:
                x = torch.baddbmm(x, torch.bmm(x, x.mT), x, beta=a, alpha=-b)  # (a I - b X X^T) X
        ctx.save_for_backward(x)
        ctx.shape, ctx.dtype = d.shape, d.dtype
        return (x * dd).sum().to(d.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (polar,) = ctx.saved_tensors
        return polar.reshape(ctx.shape).to(ctx.dtype) * grad


class _HostSvdNuclear(torch.autograd.Function):
    """Sum over a batch (..., M, C) of the singular values, from LAPACK's SVD of the matrices copied
    to the host CPU in float64. Backward: ``U V^T`` per matrix (copied to the device in the
    forward, together with the value: one copy each way), with singular values at the rank cutoff
    left out, the minimum-norm subgradient as in ``gram``. On a GPU the matrices are tiny (512 x
    10 floats for ResNet-18 on CIFAR-10): the copies and the SVD replace the device solver's
    kernel launches and its own synchronisation."""

    @staticmethod
    def forward(ctx, d: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        host = d.detach().to("cpu").to(torch.float64)  # blocking: waits for the forward pass
        u, s, vh = torch.linalg.svd(host, full_matrices=False)
        keep = _pseudo_inverse_sqrt(s, host.shape[-2], host.shape[-1], d.dtype) > 0
        polar = (u * keep.unsqueeze(-2)) @ vh
        packed = torch.cat([polar.reshape(-1), s.sum().reshape(1)]).to(d.device, d.dtype)
        ctx.save_for_backward(packed[:-1])
        ctx.shape = d.shape
        return packed[-1]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (polar,) = ctx.saved_tensors
        return polar.reshape(ctx.shape) * grad


def _singular_value_sum(d: torch.Tensor, backend: str) -> torch.Tensor:
    """Sum of the singular values of every matrix in ``d`` (..., M, C)."""
    if backend == "svd":
        return torch.linalg.svdvals(d).sum()
    if backend == "gram":
        return _GramNuclear.apply(d)
    if backend == "host-svd":
        return _HostSvdNuclear.apply(d)
    return _NewtonSchulzNuclear.apply(d)


def nuclear_norm(logits_a: torch.Tensor, logits_b: torch.Tensor, *, group_size: int | None = None,
                 backend: str | None = None) -> torch.Tensor:
    """NuAT's regulariser ``||logits_a - logits_b||_* / M`` (paper Eq. 1 and 2, divided by M).

    Args:
        logits_a, logits_b: (M, C) pre-softmax outputs, e.g. f(X~) and f(X).
        group_size: if given, the batch is split into consecutive groups of this many rows and
            the nuclear norms of the groups are summed before dividing by M. With the published
            M = 64 as group size, a larger batch keeps the published regulariser's scale
            (each row's contribution stays what it was in a 64-row minibatch). ``None`` (default,
            faithful) takes the whole batch as one matrix.
        backend: how the singular values are computed, one of ``NUCLEAR_BACKENDS`` (default: the
            module default, ``auto``). All agree in value up to rounding. They agree in gradient,
            ``U V^T / M``, up to rounding where the difference has full rank k = min(M, C),
            repeated singular values included (``newton-schulz``: singular values above
            ``NEWTON_SCHULZ_FLOOR`` times the Frobenius norm). On a rank-deficient difference the
            norm is not differentiable and the backends return different subgradients: ``gram``,
            ``newton-schulz`` and ``host-svd`` the minimum-norm one, ``U_r V_r^T / M`` (r = rank;
            singular values below the rank cutoff contribute 0; ``newton-schulz`` only in float64:
            in float32 the rounding leaves the vanished singular values near 1e-8 of the norm, below
            its floor but not at 0, and they count with part weight, a null-space term of spectral
            norm up to 1/M); ``svd`` the ``U V^T / M`` of whichever k
            singular vectors LAPACK/cuSOLVER returns, i.e. ``U_r V_r^T / M`` plus a term on the
            null spaces of spectral norm up to 1/M (tests/bench/test_nuclear_backends.py).

    Returns:
        A float32 (float64 for float64 input) scalar: the sum of singular values divided by M,
        differentiable where the difference has full rank; the gradient (a subgradient on
        rank-deficient input, see ``backend``) stays finite when singular values coincide or
        vanish. Computed in at least float32 with autocast off (bf16 logits are upcast).

    Raises:
        ValueError: unknown ``backend``; inputs that are not both (M, C) of the same shape
            (broadcasting would silently compare the wrong entries); ``group_size`` not a
            positive integer.
    """
    if logits_a.dim() != 2 or logits_a.shape != logits_b.shape:
        raise ValueError(f"nuclear_norm needs two (M, C) logit matrices of the same shape, got "
                         f"{tuple(logits_a.shape)} and {tuple(logits_b.shape)}")
    if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1):
        raise ValueError(f"group_size must be a positive integer or None, got {group_size!r}")
    m = logits_a.shape[0]
    device = logits_a.device
    name = _resolve_backend(backend, device)
    with torch.autocast(device.type, enabled=False):
        dtype = torch.promote_types(torch.promote_types(logits_a.dtype, logits_b.dtype), torch.float32)
        diff = logits_a.to(dtype) - logits_b.to(dtype)
        if m == 0:
            return diff.sum() * 0.0
        if group_size is None or group_size >= m:
            return _singular_value_sum(diff, name) / m
        full = m // group_size
        total = _singular_value_sum(diff[: full * group_size].reshape(full, group_size, -1), name)
        if full * group_size < m:
            total = total + _singular_value_sum(diff[full * group_size:], name)
        return total / m


def nuat_objective(
    logits: torch.Tensor, labels: torch.Tensor, reference_logits: torch.Tensor | None, lam: float, *,
    group_size: int | None = None,
) -> torch.Tensor:
    """The loss ``CE(f(X~), Y) + lam * ||f(X~) - f(X)||_* / M`` (paper Eq. 1 as attack objective,
    Eq. 2 with ``logits = f(X)`` swapped in as training loss), a scalar.

    ``logits`` and ``reference_logits``: (M, C); ``labels``: (M,) int64. CE is the minibatch mean;
    at ``lam == 0`` the reference is not read (None allowed); ``group_size`` as in
    :func:`nuclear_norm`."""
    if lam != 0.0 and reference_logits is None:
        raise ValueError("reference_logits are needed when lam != 0")
    loss = F.cross_entropy(logits, labels)
    if lam != 0.0:
        loss = loss + lam * nuclear_norm(logits, reference_logits, group_size=group_size)
    return loss


def margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example margin ``max_{j != y} z_j - z_y`` (positive when misclassified). Shape (M,)."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, labels[:, None], float("-inf"))
    return other.max(dim=1).values - true
