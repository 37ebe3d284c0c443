"""Training augmentation on whole batches of image tensors, vectorised, on any device.

Kinds (see ``AUGMENT_KINDS``):
    "none": identity.
    "crop-flip": zero-pad 4 pixels on every side, crop back to (H, W) at a random
        per-image offset in [0, 8]^2, flip horizontally with probability 0.5
        (torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip on CIFAR).
    "random-resized-crop-flip": per image, a crop covering a U(0.08, 1) fraction of the
        area with aspect ratio log-uniform in [3/4, 4/3] (clipped to the image) at a
        random position, resized back to (H, W) bilinearly, flipped with probability 0.5
        (an approximation of torchvision's RandomResizedCrop without its retry loop, for
        tensors already at the output size). Folder data sets (ImageNet) crop the original
        images instead, at decode time, with ``random_resized_crop_box`` (see
        ``FolderImageData.get_batch``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nuat.data.spec import AUGMENT_KINDS
from nuat.errors import UsageError

__all__ = ["augment_batch", "crop_flip_params", "apply_crop_flip", "resized_crop_flip_params",
           "apply_resized_crop_flip", "random_resized_crop_box"]

PADDING = 4


def crop_flip_params(batch: int, padding: int, generator: torch.Generator | None,
                     device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw per-image crop offsets and flips: (oy (B,), ox (B,)) int64 in [0, 2*padding], flip bool (B,)."""
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator, device=device)
    flip = torch.rand(batch, generator=generator, device=device) < 0.5
    return offsets[0], offsets[1], flip


def apply_crop_flip(x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor,
                    padding: int = PADDING) -> torch.Tensor:
    """Crop (H, W) at (oy, ox) out of the zero-padded ``x`` (B, C, H, W), then flip where ``flip``.

    Output pixel (i, j) of image b is padded[b, :, oy[b] + i, ox[b] + j'], with
    j' = W - 1 - j for flipped images and j' = j otherwise. One gather, no loop.
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    wp = w + 2 * padding
    rows = oy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = ox[:, None] + torch.arange(w, device=x.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    flat = (rows[:, :, None] * wp + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    return padded.reshape(b, c, -1).gather(2, flat).reshape(b, c, h, w)


def random_resized_crop_box(width: int, height: int, generator: torch.Generator | None = None,
                           scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                           tries: int = 10) -> tuple[int, int, int, int]:
    """A crop (left, top, crop_width, crop_height) in pixels of a ``width`` x ``height`` image,
    drawn the way torchvision's ``RandomResizedCrop`` draws it (the standard ImageNet recipe).

    Up to ``tries`` times: an area fraction U(scale) and an aspect ratio (width / height)
    log-uniform in ``ratio``, rounded to pixels; the first that fits inside the image is
    placed at a uniformly random integer position. If none fits (very elongated images),
    the largest centred crop whose aspect ratio lies in ``ratio``. Draws come from
    ``generator`` (CPU; None: torch's default generator).
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(tries):
        u = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        target = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        aspect = math.exp(log_lo + (log_hi - log_lo) * u[1])
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return left, top, w, h
    if width / height < ratio[0]:
        w, h = width, min(height, max(1, round(width / ratio[0])))
    elif width / height > ratio[1]:
        w, h = min(width, max(1, round(height * ratio[1]))), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def resized_crop_flip_params(batch: int, generator: torch.Generator | None, device: torch.device | str = "cpu",
                             scale: tuple[float, float] = (0.08, 1.0),
                             ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """Affine matrices (B, 2, 3) float32 for ``F.affine_grid``: crop size, centre and flip per image."""
    u = torch.rand(5, batch, generator=generator, device=device)
    area = scale[0] + (scale[1] - scale[0]) * u[0]
    aspect = torch.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[1])
    w = torch.sqrt(area * aspect).clamp(max=1.0)  # fraction of the width
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (2 * u[2] - 1) * (1 - w)  # centre in [-1, 1] coordinates, crop inside the image
    cy = (2 * u[3] - 1) * (1 - h)
    sign = torch.where(u[4] < 0.5, -1.0, 1.0)
    theta = torch.zeros(batch, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    return theta


def apply_resized_crop_flip(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample ``x`` (B, C, H, W) through the affine crops ``theta`` (B, 2, 3), bilinear."""
    xf = x.float() if not x.is_floating_point() else x
    grid = F.affine_grid(theta.to(xf.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(xf, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if not x.is_floating_point():
        return out.round_().clamp_(0, 255).to(x.dtype)
    return out


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Augment a batch ``x`` (B, C, H, W), uint8 in 0..255 or float in [0, 1]; same dtype,
    shape and device out. Randomness comes from ``generator``, which must live on
    ``x.device`` (None: torch's default generator)."""
    if kind == "none":
        return x
    if x.dim() != 4:
        raise ValueError(f"augment_batch expects (B, C, H, W), got shape {tuple(x.shape)}")
    if kind == "crop-flip":
        oy, ox, flip = crop_flip_params(x.shape[0], PADDING, generator, x.device)
        return apply_crop_flip(x, oy, ox, flip, PADDING)
    if kind == "random-resized-crop-flip":
        return apply_resized_crop_flip(x, resized_crop_flip_params(x.shape[0], generator, x.device))
    raise UsageError(f"unknown augmentation '{kind}'; choose one of: {', '.join(AUGMENT_KINDS)}")
