"""Loss terms as plain functions on tensors (logits are pre-softmax, shape (M, C))."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nuclear_norm(logits_a: torch.Tensor, logits_b: torch.Tensor, *, group_size: int | None = None) -> torch.Tensor:
    """NuAT's regulariser ``||logits_a - logits_b||_* / M`` (paper Eq. 1 and 2, divided by M).

    Args:
        logits_a, logits_b: (M, C) pre-softmax outputs, e.g. f(X~) and f(X).
        group_size: if given, the batch is split into consecutive groups of this many rows and
            the nuclear norms of the groups are summed before dividing by M. With the published
            M = 64 as group size, a larger batch keeps the published regulariser's scale
            (each row's contribution stays what it was in a 64-row minibatch). ``None`` (default,
            faithful) takes the whole batch as one matrix.

    Returns:
        A scalar tensor: the sum of singular values divided by M (differentiable; the gradient
        of ``svdvals`` is ``U V^T`` and stays finite when singular values coincide).
    """
    diff = logits_a - logits_b
    m = diff.shape[0]
    if m == 0:
        return diff.sum() * 0.0
    if group_size is None or group_size >= m:
        return torch.linalg.svdvals(diff).sum() / m
    groups = torch.split(diff, group_size, dim=0)
    full = len(groups) if groups[-1].shape[0] == group_size else len(groups) - 1
    total = diff.new_zeros(())
    if full:
        # one batched SVD for all full groups: (G, group_size, C)
        total = total + torch.linalg.svdvals(torch.stack(groups[:full])).sum()
    if full < len(groups):
        total = total + torch.linalg.svdvals(groups[-1]).sum()
    return total / m


def nuat_objective(
    logits: torch.Tensor, labels: torch.Tensor, reference_logits: torch.Tensor, lam: float
) -> torch.Tensor:
    """The loss ``CE(f(X~), Y) + lam * ||f(X~) - f(X)||_* / M`` (paper Eq. 1 as attack objective,
    Eq. 2 with ``logits = f(X)`` swapped in as training loss). CE is the minibatch mean."""
    loss = F.cross_entropy(logits, labels)
    if lam != 0.0:
        loss = loss + lam * nuclear_norm(logits, reference_logits)
    return loss


def margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example margin ``max_{j != y} z_j - z_y`` (positive when misclassified). Shape (M,)."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, labels[:, None], float("-inf"))
    return other.max(dim=1).values - true
