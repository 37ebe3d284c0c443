"""Model zoo: MNIST/CIFAR/ImageNet architectures behind one name-based builder.

All models take images in [0, 1] of shape ``(B, C, H, W)`` and return logits
``(B, num_classes)``; input normalisation, when wanted, is part of the model.
"""

from nuat.models.normalize import Normalize, NormalizedModel
from nuat.models.registry import (
    MODELS,
    build_from_spec,
    build_model,
    family_patterns,
    model_names,
    register_family,
    register_model,
)

# Importing the architecture modules registers them.
from nuat.models import mnist as _mnist  # noqa: E402,F401
from nuat.models import resnet as _resnet  # noqa: E402,F401
from nuat.models import preact_resnet as _preact_resnet  # noqa: E402,F401
from nuat.models import wide_resnet as _wide_resnet  # noqa: E402,F401

__all__ = [
    "MODELS",
    "Normalize",
    "NormalizedModel",
    "build_from_spec",
    "build_model",
    "family_patterns",
    "model_names",
    "register_family",
    "register_model",
]
