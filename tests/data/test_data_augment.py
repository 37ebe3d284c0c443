"""Batch augmentation: exact crops of the zero-padded image, flips, ranges, determinism."""

from __future__ import annotations

import pytest
import torch

from nuat.data import augment_batch
from nuat.data.augment import crop_flip_params, random_resized_crop_box, resized_crop_flip_params
from nuat.errors import UsageError


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _reference_crop_flip(x, oy, ox, flip, pad=4):
    """Per-image loop: zero-pad, slice, flip."""
    b, c, h, w = x.shape
    out = torch.empty_like(x)
    for i in range(b):
        padded = torch.zeros(c, h + 2 * pad, w + 2 * pad, dtype=x.dtype)
        padded[:, pad:pad + h, pad:pad + w] = x[i]
        crop = padded[:, int(oy[i]):int(oy[i]) + h, int(ox[i]):int(ox[i]) + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


def test_crop_flip_matches_reference_loop():
    x = torch.randint(1, 256, (64, 3, 32, 32), dtype=torch.uint8)  # no zeros: padding is visible
    out = augment_batch(x, "crop-flip", _gen(7))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    oy, ox, flip = crop_flip_params(64, 4, _gen(7))
    assert torch.equal(out, _reference_crop_flip(x, oy, ox, flip))
    assert not torch.equal(out, x)


def test_crop_flip_outputs_are_shifted_copies():
    """Independently of the parameter function: every output is one of the 81 x 2 crops."""
    x = torch.randint(1, 256, (8, 3, 12, 10), dtype=torch.uint8)
    out = augment_batch(x, "crop-flip", _gen(3))
    for i in range(8):
        candidates = [_reference_crop_flip(x[i:i + 1], [oy], [ox], [f])[0]
                      for oy in range(9) for ox in range(9) for f in (False, True)]
        assert sum(torch.equal(out[i], c) for c in candidates) >= 1


def test_crop_flip_float_same_as_uint8_and_in_range():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    out_u8 = augment_batch(x, "crop-flip", _gen(5))
    out_f = augment_batch(x.float() / 255, "crop-flip", _gen(5))
    assert out_f.dtype == torch.float32 and 0 <= out_f.min() and out_f.max() <= 1
    assert torch.allclose(out_f, out_u8.float() / 255)


def test_flip_probability_and_offsets():
    oy, ox, flip = crop_flip_params(4000, 4, _gen(0))
    assert 0.46 < flip.float().mean().item() < 0.54
    for o in (oy, ox):
        counts = torch.bincount(o, minlength=9)
        assert counts.numel() == 9 and counts.min() > 350  # ~444 each
    # flips visible in the images: a left-right gradient reverses its direction
    x = torch.arange(32, dtype=torch.uint8).repeat(2000, 1, 32, 1) + 100
    out = augment_batch(x, "crop-flip", _gen(1))
    reversed_ = (out[:, 0, 16, 12].int() > out[:, 0, 16, 20].int()).float().mean().item()
    assert 0.45 < reversed_ < 0.55


def test_deterministic_for_fixed_generator():
    x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    for kind in ("crop-flip", "random-resized-crop-flip"):
        a, b = augment_batch(x, kind, _gen(11)), augment_batch(x, kind, _gen(11))
        assert torch.equal(a, b)
        assert not torch.equal(a, augment_batch(x, kind, _gen(12)))


def test_none_and_unknown():
    x = torch.rand(2, 1, 28, 28)
    assert augment_batch(x, "none", _gen(0)) is x
    with pytest.raises(UsageError, match="unknown augmentation"):
        augment_batch(x, "rotate", _gen(0))


def test_random_resized_crop_flip():
    x = torch.randint(0, 256, (16, 3, 40, 40), dtype=torch.uint8)
    out = augment_batch(x, "random-resized-crop-flip", _gen(2))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    flat = torch.full((4, 3, 16, 16), 0.25)
    assert torch.allclose(augment_batch(flat, "random-resized-crop-flip", _gen(2)), flat)
    theta = resized_crop_flip_params(2000, _gen(4))
    w, h = theta[:, 0, 0].abs(), theta[:, 1, 1]
    area = w * h
    assert area.min() >= 0.08 - 1e-6 and area.max() <= 1 + 1e-6 and h.max() <= 1
    assert (theta[:, 0, 2].abs() <= 1 - w + 1e-6).all()  # crop inside the image
    assert 0.45 < (theta[:, 0, 0] < 0).float().mean().item() < 0.55


def test_random_resized_crop_box_bounds_and_spread():
    gen = _gen(5)
    boxes = torch.tensor([random_resized_crop_box(300, 200, gen) for _ in range(3000)], dtype=torch.float64)
    left, top, w, h = boxes.unbind(1)
    assert (left >= 0).all() and (top >= 0).all() and (left + w <= 300).all() and (top + h <= 200).all()
    area, aspect = w * h / (300 * 200), w / h
    # rounding to whole pixels moves area and aspect a little off the drawn values
    assert area.min() >= 0.08 * 0.97 and area.max() <= 1 and area.min() < 0.1
    assert area.max() > 0.85  # at most 267 x 200 of 300 x 200 (ratio 4/3)
    assert aspect.min() >= 0.75 * 0.97 and aspect.max() <= 4 / 3 * 1.03
    free = (300 - w) > 0
    position = left[free] / (300 - w[free])  # uniform over the free range
    assert 0.45 < position.mean().item() < 0.55 and position.min() == 0 and position.max() == 1


def test_random_resized_crop_box_falls_back_to_centre():
    # 1000 x 10: no crop of >= 8% of the area fits with a ratio in [3/4, 4/3]; the fallback is the
    # centred 4/3 crop of the full height, and it takes no position draw
    assert random_resized_crop_box(1000, 10, _gen(0)) == (493, 0, 13, 10)
    assert random_resized_crop_box(10, 1000, _gen(0)) == (0, 493, 10, 13)  # width 10, height 10 / (3/4)
    assert random_resized_crop_box(1, 1, _gen(0)) == (0, 0, 1, 1)
    with pytest.raises(ValueError, match="positive"):
        random_resized_crop_box(0, 5, _gen(0))


def test_random_resized_crop_of_a_flat_image_stays_flat_at_every_edge():
    """Crops lie inside the image, so no output pixel may blend in anything from outside it
    (the border of a small crop sits less than half a pixel from the image's edge)."""
    flat = torch.full((4000, 1, 8, 8), 0.25)
    out = augment_batch(flat, "random-resized-crop-flip", _gen(0))
    assert (out - 0.25).abs().max() < 1e-6


def test_random_resized_crop_uint8_is_the_float_result_rounded():
    x = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8)
    out_u8 = augment_batch(x, "random-resized-crop-flip", _gen(6))
    out_f = augment_batch(x.float() / 255, "random-resized-crop-flip", _gen(6))
    diff = (out_u8.float() - out_f * 255).abs()
    assert diff.max() <= 0.5 + 1e-3  # rounded to the nearest level, not truncated


def test_random_resized_crop_params_stay_inside_vertically_and_draw_areas_up_to_one():
    theta = resized_crop_flip_params(4000, _gen(8))
    w, h = theta[:, 0, 0].abs(), theta[:, 1, 1]
    assert (theta[:, 1, 2].abs() <= 1 - h + 1e-6).all()  # vertical centre keeps the crop inside too
    # areas are drawn from U(0.08, 1): a crop covering the whole image (w = h = 1 needs area >= 1)
    # does not happen, and about half of the crops cover less than half the image
    assert ((w >= 1) & (h >= 1)).sum() == 0
    assert 0.4 < (w * h < 0.5).float().mean().item() < 0.6
