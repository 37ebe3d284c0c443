"""Per-data-set defaults (a "recipe"): model, eps, epochs, batch size, learning rate.

Precedence: method defaults < recipe < command line. CIFAR values are the published ones
(ResNet-18, M = 64, lr_max 0.1, 100 epochs); the MNIST-family values are this project's short
CPU recipes (the paper's MNIST schedule is in its supplementary material, not reproduced here),
including their model: ``small-cnn``, not the 4-conv ``mnist-cnn`` of the paper's MNIST comparisons.
docs/methods.md lists every recipe and which of its values are published.
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    "mnist": {"model": "small-cnn", "eps": "0.3", "epochs": 8, "batch_size": 128, "lr": 0.05},
    "fashion-mnist": {"model": "small-cnn", "eps": "0.1", "epochs": 8, "batch_size": 128, "lr": 0.05},
    "cifar10": {"model": "resnet18", "eps": "8/255", "epochs": 100, "batch_size": 64, "lr": 0.1},
    "cifar10-jpeg": {"model": "resnet18", "eps": "8/255", "epochs": 100, "batch_size": 64, "lr": 0.1},
    "cifar100": {"model": "resnet18", "eps": "8/255", "epochs": 100, "batch_size": 64, "lr": 0.1},
    "imagenet-100": {"model": "resnet18", "eps": "8/255", "epochs": 100, "batch_size": 64, "lr": 0.1},
    "imagenet": {"model": "resnet50", "eps": "4/255", "epochs": 30, "batch_size": 256, "lr": 0.1},
    "imagefolder": {"model": "resnet18", "eps": "8/255", "epochs": 100, "batch_size": 64, "lr": 0.1},
}


def recipe_for(dataset: str) -> dict[str, Any]:
    """The recipe of ``dataset`` (a copy); unknown data sets get the CIFAR-like default."""
    return dict(RECIPES.get(dataset, RECIPES["imagefolder"]))
