"""WideResNet-D-W (Zagoruyko & Komodakis, 2016) as used by Madry et al. and TRADES."""

from __future__ import annotations

import re

import torch
from torch import nn

from nuat.errors import UsageError
from nuat.models.registry import ModelBuilder, register_family, register_model


class WideBasic(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 plus shortcut.

    When the width changes, the shortcut is a 1x1 conv (no BN) applied to the
    pre-activated input, as in the reference code. ``(B,Cin,H,W) -> (B,C,H/s,W/s)``.
    """

    def __init__(self, in_planes: int, planes: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == planes
        self.shortcut: nn.Module | None = None
        if not self.equal_in_out:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.relu(self.bn2(self.conv1(out)))
        if self.drop_rate > 0:
            out = nn.functional.dropout(out, p=self.drop_rate, training=self.training)
        return shortcut + self.conv2(out)


class WideResNet(nn.Module):
    """WRN-depth-widen: 3x3 stem (16 channels), three groups of ``(depth - 4) / 6`` blocks
    with widths 16W, 32W, 64W (strides 1, 2, 2), final BN-ReLU, adaptive average pool, linear.

    Init as in the reference: convs Kaiming-normal (fan_out, ReLU), BN weight 1 / bias 0,
    linear bias 0. ``(B, in_channels, H, W) -> (B, num_classes)``.
    """

    def __init__(
        self,
        depth: int = 34,
        widen_factor: int = 10,
        num_classes: int = 10,
        in_channels: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise UsageError(f"WideResNet depth must be 6n+4 with n >= 1 (e.g. 16, 28, 34), got {depth}")
        if widen_factor < 1:
            raise UsageError(f"WideResNet widen factor must be >= 1, got {widen_factor}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        groups = []
        in_planes = widths[0]
        for planes, stride in zip(widths[1:], (1, 2, 2)):
            blocks = []
            for j in range(n):
                blocks.append(WideBasic(in_planes, planes, stride if j == 0 else 1, drop_rate))
                in_planes = planes
            groups.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = groups
        self.bn = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.block3(self.block2(self.block1(out)))
        out = self.relu(self.bn(out))
        return self.fc(torch.flatten(self.avgpool(out), 1))


def wrn_builder(depth: int, widen_factor: int) -> ModelBuilder:
    """Builder for WRN-depth-widen_factor (dropout 0); validates the parameters eagerly."""
    if depth < 10 or (depth - 4) % 6 != 0:
        raise UsageError(
            f"wrn-{depth}-{widen_factor}: depth must satisfy (D-4) % 6 == 0 and D >= 10 "
            "(e.g. wrn-28-10, wrn-34-10)"
        )
    if widen_factor < 1:
        raise UsageError(f"wrn-{depth}-{widen_factor}: widen factor must be >= 1")

    def build(*, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        del image_size
        return WideResNet(depth, widen_factor, num_classes, in_channels)

    return build


@register_family("wrn-D-W", r"wrn-(\d+)-(\d+)", "depth D, width W, e.g. wrn-34-10")
def _wrn_family(match: re.Match[str]) -> ModelBuilder:
    return wrn_builder(int(match.group(1)), int(match.group(2)))


# The widths used in the adversarial-training literature, listed by model_names().
for _depth, _width in ((28, 10), (34, 10)):
    register_model(f"wrn-{_depth}-{_width}")(wrn_builder(_depth, _width))
