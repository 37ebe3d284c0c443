"""Fixtures for the evaluation tests: real MNIST, a quickly trained undefended small-cnn, its
checkpoint, and a deliberately gradient-masked version of it (input quantisation)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

TRAIN_IMAGES = 8000


class Quantised(nn.Module):
    """``net(round(x * (levels - 1)) / (levels - 1))``: the input gradient is zero everywhere, so
    gradient attacks see nothing while a black-box attack still works (gradient masking)."""

    def __init__(self, net: nn.Module, levels: int = 4) -> None:
        super().__init__()
        self.net, self.k = net, levels - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * self.k) / self.k)


@pytest.fixture(scope="session")
def mnist_test(real_data_dir):
    from nuat.data import load_dataset

    return load_dataset("mnist", "test", real_data_dir)


@pytest.fixture(scope="session")
def undefended_mnist(real_data_dir):
    """small-cnn trained with plain cross-entropy on 8,000 MNIST images, one epoch (~90% clean)."""
    from nuat.data import load_dataset
    from nuat.eval.targets import prepare
    from nuat.models import build_model

    train = load_dataset("mnist", "train", real_data_dir)
    torch.manual_seed(0)
    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = train.images[:TRAIN_IMAGES].float() / 255, train.labels[:TRAIN_IMAGES]
    for i in range(0, TRAIN_IMAGES, 64):
        loss = F.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return prepare(model, torch.device("cpu"))


@pytest.fixture(scope="session")
def undefended_checkpoint(undefended_mnist, tmp_path_factory):
    """The undefended model as a nuat checkpoint (MNIST, eps 0.3)."""
    from nuat.checkpoints import save_model

    path = tmp_path_factory.mktemp("ckpt") / "undefended.safetensors"
    save_model(path, undefended_mnist, dataset="mnist", eps=0.3, threat_model="linf", method="erm", epoch=1)
    return path


@pytest.fixture(scope="session")
def masked_mnist(undefended_mnist):
    """The undefended model behind 4-level input quantisation (zero input gradient everywhere)."""
    return Quantised(undefended_mnist).eval()
