"""nuat: efficient adversarial training (Nuclear-Norm Adversarial Training and friends) in PyTorch.

Pixels are in [0, 1] everywhere; any normalisation is a layer inside the model.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing nuat loads neither torch nor safetensors
    import torch
    from torch import nn

__version__ = "0.1.0"


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a nuat safetensors checkpoint alone, in eval mode on ``device`` (see
    nuat.checkpoints). It takes (B, C, H, W) images in [0, 1] and returns logits (B, classes);
    its metadata is in ``model.checkpoint_metadata``.

    Raises :class:`nuat.errors.CheckpointError` for a missing, unreadable or non-nuat file (a plain
    state dict needs its architecture: :func:`nuat.models.build_model`, then ``load_state_dict``).
    """
    from nuat.checkpoints import load_model as _load

    return _load(path, device=device)


__all__ = ["__version__", "load_model"]
