"""ResNets: ResNet-18 (CIFAR stem, 3x3 and no max-pool, below 64 px; ImageNet stem, 7x7 stride 2 and
max-pool, from 64 px on) and ImageNet ResNet-50."""

from __future__ import annotations

import torch
from torch import nn

from nuat.models.registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN; identity or 1x1-conv+BN shortcut. ``(B,Cin,H,W) -> (B,C,H/s,W/s)``."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, "ResNet v1.5") -> 1x1 convs with BN, output ``4 * planes``
    channels. ``(B,Cin,H,W) -> (B,4*planes,H/s,W/s)``."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with four stages of widths 64, 128, 256, 512 (times ``block.expansion``).

    ``imagenet_stem=False``: 3x3 stride-1 stem conv, no max-pool (CIFAR).
    ``imagenet_stem=True``: 7x7 stride-2 stem conv + 3x3 stride-2 max-pool.
    Adaptive average pooling makes any input size work.
    Input ``(B, in_channels, H, W)``; output logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        num_blocks: list[int],
        num_classes: int = 10,
        in_channels: int = 3,
        imagenet_stem: bool = False,
    ) -> None:
        super().__init__()
        if imagenet_stem:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        in_planes = 64
        stages = []
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), num_blocks)):
            layers = []
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(block(in_planes, planes, stride))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(self.avgpool(out), 1))


#: ``resnet18`` takes the ImageNet stem from this input size (pixels) on, the CIFAR stem below it
IMAGENET_STEM_MIN_SIZE = 64


def uses_imagenet_stem(image_size: int) -> bool:
    """The stem rule of ``resnet18``: ImageNet stem for ``image_size >= 64``, CIFAR stem below."""
    return image_size >= IMAGENET_STEM_MIN_SIZE


@register_model("resnet18")
def resnet18(*, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """ResNet-18 (BasicBlocks [2, 2, 2, 2]), its stem chosen by the input size:

    * ``image_size < 64`` (CIFAR, 32 px): the CIFAR stem, a 3x3 stride-1 conv and no max-pool;
      11.17M parameters for 10 classes.
    * ``image_size >= 64`` (ImageNet-100, 224 px): the standard ImageNet stem of He et al., a 7x7
      stride-2 conv and a 3x3 stride-2 max-pool, so the stages run at 1/4 of the input size
      (56x56 at 224 px; the CIFAR stem would keep 224x224, about 15x the compute); 11.23M
      parameters for 100 classes, the same as torchvision's ``resnet18``.

    The rule depends on ``image_size`` alone, which checkpoints record in their ``model_spec``,
    so a checkpoint is rebuilt with the stem of its size (a >= 64 px checkpoint from before this
    rule, b22153b, has CIFAR-stem weights and is refused on loading). PyTorch default initialisation.
    """
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, imagenet_stem=uses_imagenet_stem(image_size))


@register_model("resnet50")
def resnet50(*, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """ImageNet ResNet-50 (Bottleneck [3, 4, 6, 3]); 25.56M parameters for 1000 classes.

    Initialised like the reference ImageNet ResNet: convs Kaiming-normal (fan_out, ReLU),
    BatchNorm weight 1 and bias 0; the linear layer keeps PyTorch's default.
    Works for small images too (adaptive pooling), e.g. 32x32 -> 1x1 in the last stage.
    """
    del image_size
    model = ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, imagenet_stem=True)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
