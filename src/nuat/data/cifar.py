"""Readers for the CIFAR-10 and CIFAR-100 *binary* distributions (never the pickles).

CIFAR-10 (``cifar-10-batches-bin/``): ``data_batch_1..5.bin`` and ``test_batch.bin``,
records of 1 label byte + 3072 pixel bytes (1024 red, 1024 green, 1024 blue,
row-major 32x32); class names in ``batches.meta.txt``.
CIFAR-100 (``cifar-100-binary/``): ``train.bin`` and ``test.bin``, records of
2 label bytes (coarse, fine) + 3072 pixel bytes; we use the fine label; names in
``fine_label_names.txt``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nuat.data.imagedata import ArrayImageData
from nuat.data.spec import of_split
from nuat.errors import DataError

__all__ = ["CIFAR10_FILES", "CIFAR100_FILES", "cifar_folder", "load_cifar10", "load_cifar100", "read_cifar_records"]

PIXELS = 3 * 32 * 32
CIFAR10_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
CIFAR100_FILES = {"train": ["train.bin"], "test": ["test.bin"]}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_folder(folder: Path, subdir: str, files: dict[str, list[str]], split: str | None = None) -> Path | None:
    """``folder/subdir`` or ``folder`` itself, whichever holds the .bin files of ``split`` (None:
    of every split); else None."""
    wanted = [name for names in of_split(files, split) for name in names]
    for candidate in (folder / subdir, folder):
        if all((candidate / name).is_file() for name in wanted):
            return candidate
    return None


def read_cifar_records(path: Path, label_bytes: int, label_index: int,
                       num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR binary file: uint8 images (N, 3, 32, 32) and int64 labels (N,).

    ``label_index`` picks which of the ``label_bytes`` leading bytes is the label.
    Raises DataError naming ``path`` if the size is not a whole number of records
    or a label is out of range.
    """
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read CIFAR file {path}: {exc}") from None
    record = label_bytes + PIXELS
    if raw.size == 0 or raw.size % record:
        raise DataError(f"CIFAR file {path} has {raw.size} bytes, not a whole number of {record}-byte records")
    rows = raw.reshape(-1, record)
    labels = rows[:, label_index].astype(np.int64)
    if int(labels.max()) >= num_classes:
        raise DataError(f"CIFAR file {path} has label {int(labels.max())}, expected < {num_classes}")
    return rows[:, label_bytes:].reshape(-1, 3, 32, 32), labels


def _class_names(path: Path, count: int, default: list[str] | None) -> list[str]:
    if path.is_file():
        names = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        names = [n for n in names if n]
        if len(names) == count:
            return names
        raise DataError(f"{path} lists {len(names)} class names, expected {count}")
    return default if default is not None else [str(i) for i in range(count)]


def _load(folder: Path, files: list[str], label_bytes: int, label_index: int, classes: list[str]) -> ArrayImageData:
    parts = [read_cifar_records(folder / name, label_bytes, label_index, len(classes)) for name in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ArrayImageData(torch.from_numpy(images), torch.from_numpy(labels), classes)


def load_cifar10(folder: Path, split: str) -> ArrayImageData:
    """CIFAR-10 split from ``folder`` (holding ``cifar-10-batches-bin/`` or the .bin files):
    images uint8 (N, 3, 32, 32), N = 50000 train / 10000 test."""
    base = cifar_folder(folder, "cifar-10-batches-bin", CIFAR10_FILES, split)
    if base is None:
        names = ", ".join(CIFAR10_FILES[split])
        raise DataError(f"no CIFAR-10 binary files of the {split} split ({names}) in {folder}")
    classes = _class_names(base / "batches.meta.txt", 10, CIFAR10_CLASSES)
    return _load(base, CIFAR10_FILES[split], 1, 0, classes)


def load_cifar100(folder: Path, split: str) -> ArrayImageData:
    """CIFAR-100 split (fine labels) from ``folder`` (holding ``cifar-100-binary/`` or the
    .bin files): images uint8 (N, 3, 32, 32), N = 50000 train / 10000 test."""
    base = cifar_folder(folder, "cifar-100-binary", CIFAR100_FILES, split)
    if base is None:
        raise DataError(f"no CIFAR-100 binary file of the {split} split ({CIFAR100_FILES[split][0]}) in {folder}")
    classes = _class_names(base / "fine_label_names.txt", 100, None)
    return _load(base, CIFAR100_FILES[split], 2, 1, classes)
