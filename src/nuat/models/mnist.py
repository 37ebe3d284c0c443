"""Small MNIST networks: the 4-conv net of the NuAT paper's MNIST comparisons (reference
details) and the 2-conv fast net of Wong et al. (``small-cnn``; not TRADES' 4-conv SmallCNN)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from nuat.errors import UsageError
from nuat.models.registry import register_model


class MnistCNN(nn.Sequential):
    """conv5x5(32)-conv5x5(32)-maxpool2-conv5x5(64)-conv5x5(64)-maxpool2-fc512-fc(K), ReLU.

    Input ``(B, in_channels, S, S)``, convs keep size (padding 2), each pool halves it
    (floor), so the flattened size is ``64 * (S // 4) ** 2``. Output ``(B, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28) -> None:
        side = image_size // 2 // 2
        if side < 1:
            raise UsageError(f"mnist-cnn needs image_size >= 4, got {image_size}")
        super().__init__(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(in_channels, 32, 5, padding=2)),
                    ("relu1", nn.ReLU()),
                    ("conv2", nn.Conv2d(32, 32, 5, padding=2)),
                    ("relu2", nn.ReLU()),
                    ("pool1", nn.MaxPool2d(2)),
                    ("conv3", nn.Conv2d(32, 64, 5, padding=2)),
                    ("relu3", nn.ReLU()),
                    ("conv4", nn.Conv2d(64, 64, 5, padding=2)),
                    ("relu4", nn.ReLU()),
                    ("pool2", nn.MaxPool2d(2)),
                    ("flatten", nn.Flatten()),
                    ("fc1", nn.Linear(64 * side * side, 512)),
                    ("relu5", nn.ReLU()),
                    ("fc2", nn.Linear(512, num_classes)),
                ]
            )
        )


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class SmallCNN(nn.Sequential):
    """Fast MNIST net of Wong et al. (2020): conv(16,4x4,s2,p1)-ReLU-conv(32,4x4,s2,p1)-ReLU-
    flatten-fc100-ReLU-fc(K).

    Input ``(B, in_channels, S, S)``; for S=28 the maps are 14x14 then 7x7, so the
    flattened size is ``32 * 7 * 7``. Output ``(B, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28) -> None:
        side = _conv_out(_conv_out(image_size, 4, 2, 1), 4, 2, 1)
        if image_size < 4 or side < 1:
            raise UsageError(f"small-cnn needs image_size >= 4, got {image_size}")
        super().__init__(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(in_channels, 16, 4, stride=2, padding=1)),
                    ("relu1", nn.ReLU()),
                    ("conv2", nn.Conv2d(16, 32, 4, stride=2, padding=1)),
                    ("relu2", nn.ReLU()),
                    ("flatten", nn.Flatten()),
                    ("fc1", nn.Linear(32 * side * side, 100)),
                    ("relu3", nn.ReLU()),
                    ("fc2", nn.Linear(100, num_classes)),
                ]
            )
        )


@register_model("mnist-cnn")
def mnist_cnn(*, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """The 4-conv MNIST network of the NuAT paper's line of work (reference details: conv 5x5 32,
    conv 5x5 32, maxpool, conv 5x5 64, conv 5x5 64, maxpool, fc 512, fc 10)."""
    return MnistCNN(num_classes, in_channels, image_size)


@register_model("small-cnn")
def small_cnn(*, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """The 2-conv fast MNIST network of Wong et al., "Fast is better than free"."""
    return SmallCNN(num_classes, in_channels, image_size)
