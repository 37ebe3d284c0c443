"""In-memory and lazily decoded image data sets with one batch interface.

Every data set yields uint8 images of shape (B, C, H, W) with values 0..255 and
int64 labels of shape (N,). Conversion to float in [0, 1] happens in the loader.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from nuat.errors import DataError, UsageError

__all__ = ["ImageData", "ArrayImageData", "FolderImageData", "subset", "fit_image", "resized_crop_flip_image",
           "default_decode_threads"]


class ImageData(ABC):
    """A labelled image data set with a fixed image shape (C, H, W).

    Attributes:
        labels: int64 tensor (N,), class indices in [0, len(classes)).
        classes: class names, index i is label i.
    """

    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes (len(classes))."""
        return len(self.classes)

    @property
    @abstractmethod
    def image_shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) of one image."""

    @abstractmethod
    def get_batch(self, index: torch.Tensor) -> torch.Tensor:
        """Images at ``index`` (int64 (B,)) as a uint8 tensor (B, C, H, W) on the CPU
        (or on the device the images live on, for ArrayImageData)."""


def check_classes(data: ImageData, trained: Sequence[str] | None, where: str) -> None:
    """Raise :class:`nuat.errors.DataError` if ``data``'s classes are not ``trained`` (the class
    names a checkpoint was trained on, in label order; None: not recorded, nothing to check).
    A folder split that lacks a class would otherwise shift every later label silently."""
    if trained is None or list(data.classes) == list(trained):
        return
    missing = [c for c in trained if c not in data.classes][:3]
    extra = [c for c in data.classes if c not in trained][:3]
    parts = ([f"missing {missing}"] if missing else []) + ([f"not trained on {extra}"] if extra else [])
    detail = ", ".join(parts) or "same names, other order"
    raise DataError(f"{where}: the test classes differ from the {len(trained)} the model was trained on "
                    f"({len(data.classes)} here; {detail})")


def _check_labels(labels: torch.Tensor, n: int, classes: Sequence[str]) -> torch.Tensor:
    labels = torch.as_tensor(labels).to(torch.int64)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
        raise ValueError(f"labels must lie in [0, {len(classes)}), got {int(labels.min())}..{int(labels.max())}")
    return labels


class ArrayImageData(ImageData):
    """All images in memory as one uint8 tensor (N, C, H, W).

    Used for MNIST, Fashion-MNIST, CIFAR-10/100 and the decoded cifar10-jpeg.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images = images
        self.classes = list(classes)
        self.labels = _check_labels(labels, images.shape[0], self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return (int(c), int(h), int(w))

    def get_batch(self, index: torch.Tensor) -> torch.Tensor:
        return self.images[index.to(self.images.device)]

    def __repr__(self) -> str:
        return f"ArrayImageData(n={len(self)}, image_shape={self.image_shape}, classes={len(self.classes)})"


def decode_errors() -> tuple[type[Exception], ...]:
    """What PIL raises for a file it cannot decode: a missing, truncated or foreign file (OSError,
    UnidentifiedImageError), bad image data (ValueError), and an image whose header claims more
    pixels than PIL's limit (DecompressionBombError, no OSError: it was a traceback)."""
    from PIL import Image

    return (OSError, ValueError, Image.DecompressionBombError)


def fit_image(image, size: int, resize_to: int | None = None):
    """Resize a PIL image's shorter side to ``resize_to`` (default ``size``), then
    center-crop ``size`` x ``size``. Images already ``size`` x ``size`` are returned as is.

    The arithmetic is torchvision's ``Resize(resize_to)`` + ``CenterCrop(size)``, pixel for pixel
    (the usual evaluation view): the longer side is truncated, ``int(resize_to * long / short)``,
    and the crop's offsets are rounded, ``int(round((side - size) / 2))``."""
    from PIL import Image

    w, h = image.size
    if (w, h) == (size, size) and resize_to in (None, size):
        return image
    short = resize_to or size
    nw, nh = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    image = image.resize((nw, nh), Image.BILINEAR)
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def resized_crop_flip_image(image, size: int, generator: torch.Generator):
    """The training view of an original PIL image: a random resized crop of it (drawn by
    ``random_resized_crop_box``), resized to ``size`` x ``size`` bilinearly, then flipped
    left-right with probability 1/2 (torchvision's RandomResizedCrop + RandomHorizontalFlip)."""
    from PIL import Image

    from nuat.data.augment import random_resized_crop_box

    left, top, w, h = random_resized_crop_box(*image.size, generator)
    # crop, then resize, as torchvision's resized_crop does (resize(box=...) would let the filter
    # read pixels beyond the crop at its borders)
    image = image.crop((left, top, left + w, top + h)).resize((size, size), Image.BILINEAR)
    if float(torch.rand((), generator=generator)) < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    return image


def default_decode_threads() -> int:
    """Threads that decode one batch of files: ``$NUAT_DECODE_THREADS`` if set, else the CPUs
    this process may use, at most 8. PIL releases the GIL while it decodes and resizes."""
    env = os.environ.get("NUAT_DECODE_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise UsageError(f"NUAT_DECODE_THREADS={env!r} is invalid; it must be a positive integer")
        return int(env)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cpus))


#: the golden-ratio increment of splitmix64: spreads (batch seed, position) pairs over 2**63
_SEED_STRIDE = 0x9E3779B97F4A7C15


class FolderImageData(ImageData):
    """Image files (JPEG/PNG) decoded with PIL on demand, one batch at a time.

    Args:
        paths: one file per sample.
        labels: int64 (N,).
        classes: class names.
        image_size: output side S in pixels; images become (3, S, S).
        resize_to: shorter side before the center crop of the un-augmented view; ``None``
            means ``image_size``; ImageNet uses 256 for ``image_size`` 224.
        decode_threads: threads decoding the images of one batch in parallel (None:
            ``default_decode_threads()``); the result does not depend on it.
    """

    def __init__(self, paths: Sequence[str | Path], labels: torch.Tensor, classes: Sequence[str],
                 image_size: int, resize_to: int | None = None, decode_threads: int | None = None) -> None:
        self.paths = [str(p) for p in paths]
        self.classes = list(classes)
        self.labels = _check_labels(labels, len(self.paths), self.classes)
        self.image_size = int(image_size)
        self.resize_to = resize_to
        self.decode_threads = default_decode_threads() if decode_threads is None else int(decode_threads)
        if self.decode_threads < 1:
            raise ValueError(f"decode_threads must be >= 1, got {decode_threads}")
        self._pool: ThreadPoolExecutor | None = None
        self._pool_key = (0, 0)  # (process id, thread count) the pool was made for

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.image_size, self.image_size)

    def load_image(self, i: int, generator: torch.Generator | None = None) -> np.ndarray:
        """Decode sample ``i`` to a uint8 array (S, S, 3): resized and center-cropped, or,
        given a CPU ``generator``, a random resized crop + flip of the original image."""
        from PIL import Image

        path = self.paths[i]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if generator is None:
                    img = fit_image(img, self.image_size, self.resize_to)
                else:
                    img = resized_crop_flip_image(img, self.image_size, generator)
                return np.asarray(img, dtype=np.uint8)
        except decode_errors() as exc:
            raise DataError(f"cannot decode image {path}: {exc}") from None

    def _executor(self) -> ThreadPoolExecutor:
        """The decode pool, made anew for a new thread count or after a fork (a forked child
        has none of its parent's threads)."""
        key = (os.getpid(), self.decode_threads)
        if self._pool is None or self._pool_key != key:
            if self._pool is not None and self._pool_key[0] == key[0]:
                self._pool.shutdown(wait=False)
            self._pool = ThreadPoolExecutor(self.decode_threads, thread_name_prefix="nuat-decode")
            self._pool_key = key
        return self._pool

    def get_batch(self, index: torch.Tensor, augment_seed: int | None = None) -> torch.Tensor:
        """Images at ``index`` as uint8 (B, 3, S, S), decoded by ``decode_threads`` threads.
        With ``augment_seed``, each is a random resized crop + flip of its original (the
        ImageNet training view), drawn from a CPU generator of its own seeded from
        ``augment_seed`` and its position in the batch: the same seed gives the same batch,
        whatever the number of threads."""
        s = self.image_size
        out = np.empty((len(index), s, s, 3), dtype=np.uint8)

        def decode(k: int, i: int) -> None:
            generator = None
            if augment_seed is not None:
                generator = torch.Generator().manual_seed((augment_seed + k * _SEED_STRIDE) % 2**63)
            out[k] = self.load_image(i, generator)

        jobs = list(enumerate(index.tolist()))
        if self.decode_threads == 1 or len(jobs) < 2:
            for k, i in jobs:
                decode(k, i)
        else:
            pool = self._executor()
            for future in [pool.submit(decode, k, i) for k, i in jobs]:
                future.result()  # in order: the first failing image's DataError is raised
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()

    def __repr__(self) -> str:
        return f"FolderImageData(n={len(self)}, image_shape={self.image_shape}, classes={len(self.classes)})"


def subset(data: ImageData, index: torch.Tensor | Sequence[int]) -> ImageData:
    """The samples of ``data`` at ``index`` (int64 (M,)), as the same kind of ImageData."""
    index = torch.as_tensor(index, dtype=torch.int64)
    if isinstance(data, ArrayImageData):
        return ArrayImageData(data.images[index.to(data.images.device)], data.labels[index], data.classes)
    if isinstance(data, FolderImageData):
        paths = [data.paths[i] for i in index.tolist()]
        return FolderImageData(paths, data.labels[index], data.classes, data.image_size, data.resize_to,
                               data.decode_threads)
    raise TypeError(f"subset() does not support {type(data).__name__}")
