"""Readers for the IDX format of MNIST and Fashion-MNIST (gzipped or plain).

Layout: 4-byte big-endian magic (0x00000803 for uint8 images, 0x00000801 for
uint8 labels), one 4-byte big-endian size per dimension, then the uint8 data.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from nuat.data.imagedata import ArrayImageData
from nuat.errors import DataError

__all__ = ["read_idx", "idx_file", "load_mnist_like", "MNIST_FILES", "MNIST_CLASSES", "FASHION_MNIST_CLASSES"]

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

#: split -> (images file, labels file); the canonical names are gzipped.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def idx_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` if it exists, else the uncompressed variant without ``.gz``, else None."""
    path = folder / name
    if path.is_file():
        return path
    plain = path.with_suffix("") if path.suffix == ".gz" else path
    return plain if plain.is_file() else None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file of uint8 data with the expected ``magic``.

    Returns a uint8 array with the dimensions from the header, e.g. (60000, 28, 28)
    for images or (60000,) for labels. Raises DataError naming ``path`` on a wrong
    magic number, a truncated or oversized body, or a corrupt gzip stream.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4:
        raise DataError(f"IDX file {path} is truncated: {len(raw)} bytes, no header")
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise DataError(f"IDX file {path} has magic number 0x{found:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path} is truncated: header needs {header} bytes, file has {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != size:
        what = "truncated" if len(raw) - header < size else "too long"
        raise DataError(f"IDX file {path} is {what}: header {dims} needs {size} data bytes, found {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_mnist_like(folder: Path, split: str, classes: list[str]) -> ArrayImageData:
    """Load an MNIST-style split from ``folder`` as uint8 images (N, 1, 28, 28), labels (N,)."""
    image_name, label_name = MNIST_FILES[split]
    paths = []
    for name in (image_name, label_name):
        path = idx_file(folder, name)
        if path is None:
            raise DataError(f"missing {folder / name}")
        paths.append(path)
    images = read_idx(paths[0], IMAGES_MAGIC)
    labels = read_idx(paths[1], LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{paths[0]} holds {images.shape[0]} images but {paths[1]} holds {labels.shape[0]} labels")
    if labels.size and int(labels.max()) >= len(classes):
        raise DataError(f"{paths[1]} has label {int(labels.max())}, expected < {len(classes)}")
    x = torch.from_numpy(images.copy()).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return ArrayImageData(x, y, classes)
