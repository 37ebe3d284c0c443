"""Loss terms as plain functions on tensors (logits are pre-softmax, shape (M, C))."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

#: Ways to compute the sum of singular values (see :func:`nuclear_norm` and docs/speed.md):
#: ``svd``: ``torch.linalg.svdvals`` (LAPACK/cuSOLVER SVD; the reference);
#: ``gram``: eigenvalues of the small Gram matrix ``D^T D`` (C x C, or ``D D^T`` when M < C) in
#: float64, with the gradient ``D V diag(1/sigma) V^T = U V^T`` written out;
#: ``newton-schulz``: the trace of ``(D^T D)^(1/2)`` from a fixed number of coupled Newton-Schulz
#: iterations (matrix products only: no solver call, no host synchronisation on a GPU);
#: ``auto``: ``svd`` on the CPU (fastest there, measured by ``nuat bench --nuclear``), ``gram`` on
#: other devices (one batched solver call for all groups).
NUCLEAR_BACKENDS = ("auto", "svd", "gram", "newton-schulz")
NEWTON_SCHULZ_ITERATIONS = 32

_default_backend = "auto"


def _check_backend(name: str) -> None:
    if name not in NUCLEAR_BACKENDS:
        raise ValueError(f"unknown nuclear-norm backend {name!r}; choose one of: {', '.join(NUCLEAR_BACKENDS)}")


def set_nuclear_backend(name: str) -> str:
    """Make ``name`` the backend of :func:`nuclear_norm` calls that do not name one; returns the
    previous default (the training loop leaves it at ``auto``; ``nuat bench`` compares them)."""
    global _default_backend
    _check_backend(name)
    previous, _default_backend = _default_backend, name
    return previous


@contextlib.contextmanager
def nuclear_backend(name: str):
    """``with nuclear_backend("gram"): ...`` uses that backend inside the block."""
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


class _NewtonSchulzNuclear(torch.autograd.Function):
    """``trace((D^T D)^(1/2))`` summed over a batch, by coupled Newton-Schulz iterations on the
    float64 Gram matrix scaled by its Frobenius norm (eigenvalues in (0, 1]). Matrix products only;
    32 iterations resolve singular values down to ~1e-5 of the largest (smaller ones are
    underestimated, by at most their own size).
    Backward: ``D (D^T D)^(-1/2)`` from the same iteration (its inverse-root iterate stays bounded
    for tiny singular values, so the gradient is finite)."""

    @staticmethod
    def forward(ctx, d: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        work = torch.float64  # a float32 Gram matrix loses singular values below sqrt(eps) * max
        dd = d.to(work)
        tall = d.shape[-2] >= d.shape[-1]
        gram = dd.mT @ dd if tall else dd @ dd.mT
        scale = torch.linalg.matrix_norm(gram).clamp_min(torch.finfo(work).tiny)[..., None, None]
        k = gram.shape[-1]
        eye = torch.eye(k, dtype=work, device=d.device).expand_as(gram)
        y, z = gram / scale, eye
        for _ in range(NEWTON_SCHULZ_ITERATIONS):
            t = 1.5 * eye - 0.5 * (z @ y)
            y, z = y @ t, t @ z
        root = scale.sqrt()
        ctx.save_for_backward(dd, z, root)
        ctx.tall, ctx.dtype = tall, d.dtype
        return (y.diagonal(dim1=-2, dim2=-1).sum(-1) * root[..., 0, 0]).sum().to(d.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        dd, z, root = ctx.saved_tensors
        g = (dd @ z if ctx.tall else z @ dd) / root
        return g.to(ctx.dtype) * grad


def _singular_value_sum(d: torch.Tensor, backend: str) -> torch.Tensor:
    """Sum of the singular values of every matrix in ``d`` (..., M, C)."""
    if backend == "svd":
        return torch.linalg.svdvals(d).sum()
    if backend == "gram":
        return _GramNuclear.apply(d)
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
            module default, ``auto``). All agree in value and gradient up to rounding (tests).

    Returns:
        A float32 (float64 for float64 input) scalar: the sum of singular values divided by M,
        differentiable; the gradient is ``U V^T / M`` and stays finite when singular values
        coincide. Computed in at least float32 with autocast off (bf16 logits are upcast).
    """
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
    logits: torch.Tensor, labels: torch.Tensor, reference_logits: torch.Tensor, lam: float, *,
    group_size: int | None = None,
) -> torch.Tensor:
    """The loss ``CE(f(X~), Y) + lam * ||f(X~) - f(X)||_* / M`` (paper Eq. 1 as attack objective,
    Eq. 2 with ``logits = f(X)`` swapped in as training loss). CE is the minibatch mean;
    ``group_size`` as in :func:`nuclear_norm`."""
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
