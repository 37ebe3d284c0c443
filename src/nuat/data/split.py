"""The class-balanced held-out validation split used for model selection."""

from __future__ import annotations

import torch

from nuat.errors import UsageError

__all__ = ["validation_split"]


def validation_split(labels: torch.Tensor, per_class: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (train_index, val_index), both int64 and sorted ascending.

    The first ``per_class`` samples of each class, in data-set order, form the
    validation set (1,000 samples for 10 classes at the default); all others are
    training samples. Deterministic: no randomness is involved.

    Args:
        labels: int64 (N,) class indices >= 0.
        per_class: validation samples per class, >= 0; every class present must
            have more than ``per_class`` samples.
    """
    labels = torch.as_tensor(labels).to(torch.int64).cpu()
    if labels.dim() != 1:
        raise UsageError(f"labels must be one-dimensional, got shape {tuple(labels.shape)}")
    if per_class < 0:
        raise UsageError(f"per_class must be >= 0, got {per_class}")
    n = labels.numel()
    if n == 0:
        empty = torch.empty(0, dtype=torch.int64)
        return empty, empty.clone()
    if int(labels.min()) < 0:
        raise UsageError("labels must be >= 0")
    order = torch.sort(labels, stable=True).indices  # by class, data-set order within a class
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n) - starts[labels[order]]  # position of each sample within its class
    present = counts > 0
    fewest = int(counts[present].min())
    if fewest <= per_class:  # name the smallest class: it sets the largest value allowed
        smallest = int(torch.where(present & (counts == fewest))[0][0])
        raise UsageError(f"--val-per-class {per_class} is too large: class {smallest} has only {fewest} samples "
                         f"and each class needs at least one left for training; allowed: 0 to {fewest - 1}")
    is_val = torch.zeros(n, dtype=torch.bool)
    is_val[order[rank < per_class]] = True
    return is_val.logical_not().nonzero().flatten(), is_val.nonzero().flatten()
