"""The device data pipeline (whole uint8 data set on the device, batched augmentation) yields the
same images as a reference loader that works image by image in Python, for a fixed seed; the
streaming path (files decoded by a background thread) yields the same batches as the in-memory one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nuat.data import ArrayImageData, BatchLoader
from nuat.data.augment import PADDING, crop_flip_params
from nuat.data.imagedata import FolderImageData


def _reference_epoch(images: torch.Tensor, labels: torch.Tensor, batch: int, seed: int, augment: bool,
                     device: str = "cpu"):
    """Per-image reference: the documented order and seeding of BatchLoader, then pad, crop and
    flip each image with plain slicing, then scale to [0, 1]. The crops are drawn on ``device``'s
    generator, as the loader does (a CUDA generator gives other numbers than a CPU one)."""
    gen = torch.Generator().manual_seed(seed)
    n = images.shape[0]
    perm = torch.randperm(n, generator=gen)
    aug_seed = int(torch.randint(0, 2**62, (1,), generator=gen)) if augment else 0
    out = []
    for k in range(-(-n // batch)):
        index = perm[k * batch:(k + 1) * batch]
        if augment:
            g = torch.Generator(device=device).manual_seed((aug_seed + k) % 2**63)
            oy, ox, flip = (t.cpu() for t in crop_flip_params(len(index), PADDING, g, device=device))
        xs = []
        for j, i in enumerate(index.tolist()):
            img = images[i].numpy().astype(np.float32)
            if augment:
                c, h, w = img.shape
                padded = np.zeros((c, h + 2 * PADDING, w + 2 * PADDING), np.float32)
                padded[:, PADDING:PADDING + h, PADDING:PADDING + w] = img
                img = padded[:, int(oy[j]):int(oy[j]) + h, int(ox[j]):int(ox[j]) + w]
                if bool(flip[j]):
                    img = img[:, :, ::-1]
            xs.append(torch.from_numpy(np.ascontiguousarray(img)) / 255.0)
        out.append((torch.stack(xs), labels[index]))
    return out


def _data(n=70, shape=(3, 12, 10), seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    return ArrayImageData(images, torch.arange(n) % 4, list("abcd"))


@pytest.mark.parametrize("augment", ["none", "crop-flip"])
def test_device_pipeline_equals_per_image_reference(augment):
    data = _data()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        loader = BatchLoader(data, 16, shuffle=True, generator=torch.Generator().manual_seed(3), augment=augment,
                             device=device)
        batches = list(loader)
        reference = _reference_epoch(data.images, data.labels, 16, 3, augment == "crop-flip", device)
        assert len(batches) == len(reference) == 5
        for (x, y), (rx, ry) in zip(batches, reference):
            assert x.device.type == device and x.dtype == torch.float32
            assert torch.equal(x.cpu(), rx) and torch.equal(y.cpu(), ry)


def test_streaming_path_equals_in_memory_path(tmp_path):
    from PIL import Image

    data = _data(n=23, shape=(3, 8, 8), seed=1)
    paths = []
    for i in range(len(data)):
        path = tmp_path / f"{i:03d}.png"
        Image.fromarray(data.images[i].permute(1, 2, 0).numpy()).save(path)
        paths.append(path)
    files = FolderImageData(paths, data.labels, data.classes, image_size=8)
    make = lambda d: BatchLoader(d, 5, shuffle=True, generator=torch.Generator().manual_seed(7),  # noqa: E731
                                 augment="crop-flip")
    streamed, in_memory = list(make(files)), list(make(data))
    assert len(streamed) == len(in_memory) == 5
    for (x, y), (rx, ry) in zip(streamed, in_memory):
        assert torch.equal(x, rx) and torch.equal(y, ry)
