"""Model zoo: MNIST/CIFAR/ImageNet architectures behind one name-based builder.

All models take images in [0, 1] of shape ``(B, C, H, W)`` and return logits
``(B, num_classes)``; input normalisation, when wanted, is part of the model.

Registered names: ``mnist-cnn``, ``small-cnn`` (MNIST family); ``resnet18``, ``preact-resnet18``,
``wrn-D-W`` (e.g. ``wrn-34-10``; CIFAR 3x3 stems); ``resnet50`` (ImageNet stem). ``resnet18`` picks
its stem by ``image_size``: the CIFAR stem (3x3 stride-1 conv, no max-pool) below 64 px, the
standard ImageNet stem (7x7 stride-2 conv + 3x3 stride-2 max-pool) from 64 px on (ImageNet-100 at
224 px); ``model_spec`` records ``image_size``, so checkpoints rebuild with the same stem.
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
