"""nuat: efficient adversarial training (Nuclear-Norm Adversarial Training and friends) in PyTorch.

Pixels are in [0, 1] everywhere; any normalisation is a layer inside the model.
"""

__version__ = "0.1.0"


def load_model(path, *, device="cpu"):
    """Rebuild a model from a nuat safetensors checkpoint alone, in eval mode (see nuat.checkpoints)."""
    from nuat.checkpoints import load_model as _load

    return _load(path, device=device)


__all__ = ["__version__", "load_model"]
