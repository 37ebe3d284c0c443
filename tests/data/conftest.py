"""Fixtures for the data-layer tests: an isolated environment and writers of tiny files
in the real on-disk formats (IDX, CIFAR binary, ImageFolder, tar.gz)."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import nuat.data.roots as roots


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No real cache, home, $NUAT_DATA or system folders leak into a test; offline."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NUAT_CACHE", str(tmp_path / "decoded"))
    monkeypatch.setenv("NUAT_OFFLINE", "1")
    monkeypatch.delenv("NUAT_DATA", raising=False)
    monkeypatch.setattr(roots, "SYSTEM_ROOTS", (tmp_path / "sys1", tmp_path / "sys2"))
    return SimpleNamespace(home=home, system=(tmp_path / "sys1", tmp_path / "sys2"))


def write_idx(path: Path, array: np.ndarray, magic: int | None = None, cut: int = 0) -> Path:
    """Write uint8 ``array`` as IDX (gzipped if the name ends in .gz), minus ``cut`` trailing bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    raw = raw[: len(raw) - cut]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def write_mnist(folder: Path, n_train: int = 30, n_test: int = 20, seed: int = 0) -> dict:
    """Four gzipped IDX files of random 28x28 images; returns {split: (images, labels)}."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
        out[split] = (images, labels)
    return out


def cifar_records(n: int, label_bytes: int, num_classes: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """``n`` records (label bytes + 3072 pixel bytes); returns (bytes, images (n,3,32,32), labels (n, label_bytes))."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, num_classes, (n, label_bytes), dtype=np.uint8)
    raw = np.concatenate([labels, images.reshape(n, -1)], axis=1).tobytes()
    return raw, images, labels


def write_cifar10(folder: Path, per_file: int = 4, meta: bool = True) -> dict:
    """The six CIFAR-10 .bin files in ``folder``; returns {split: (images, labels (n,))}."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"train": [], "test": []}
    names = [(f"data_batch_{i}.bin", "train") for i in range(1, 6)] + [("test_batch.bin", "test")]
    for seed, (name, split) in enumerate(names):
        raw, images, labels = cifar_records(per_file, 1, 10, seed)
        (folder / name).write_bytes(raw)
        parts[split].append((images, labels[:, 0]))
    if meta:
        (folder / "batches.meta.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n\n")
    return {s: (np.concatenate([p[0] for p in v]), np.concatenate([p[1] for p in v])) for s, v in parts.items()}


def write_cifar100(folder: Path, n: int = 6) -> dict:
    """CIFAR-100 train.bin/test.bin with (coarse, fine) labels; returns {split: (images, labels (n, 2))}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for seed, split in enumerate(("train", "test")):
        raw, images, labels = cifar_records(n, 2, 100, seed + 10)
        labels[:, 0] %= 20
        raw = np.concatenate([labels, images.reshape(n, -1)], axis=1).tobytes()
        (folder / f"{split}.bin").write_bytes(raw)
        out[split] = (images, labels)
    (folder / "fine_label_names.txt").write_text("\n".join(f"fine{i}" for i in range(100)) + "\n")
    return out


def image_bytes(array: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def make_image(label: int, k: int, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    """A smooth, recognisable (H, W, 3) uint8 image: a flat colour coding (label, k)."""
    img = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 20 * label + 10, 40 * k + 10, 128
    return img


def write_image_folder(split_dir: Path, classes: list[str], per_class: int, size=(32, 32), fmt: str = "PNG") -> None:
    """``split_dir/<class>/<k>.png|jpg`` with flat-colour images (see ``make_image``)."""
    ext = ".png" if fmt == "PNG" else ".jpg"
    for label, name in enumerate(classes):
        (split_dir / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            (split_dir / name / f"{k:04d}{ext}").write_bytes(image_bytes(make_image(label, k, size), fmt))


def write_jpeg_tar(path: Path, classes: list[str], per_class: dict[str, int], prefix: str = "") -> None:
    """A tar.gz in the cifar10-jpeg layout, members added in a scrambled order."""
    entries = [(split, label, name, k) for split, n in per_class.items()
               for label, name in enumerate(classes) for k in range(n)]
    entries = entries[::-1][1::2] + entries[::-1][0::2]  # deliberately not sorted
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for split, label, name, k in entries:
            data = image_bytes(make_image(label, k), "JPEG")
            info = tarfile.TarInfo(f"{prefix}{split}/{name}/{k:04d}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def fakes():
    """The writer functions of this module."""
    return SimpleNamespace(write_idx=write_idx, write_mnist=write_mnist, write_cifar10=write_cifar10,
                           write_cifar100=write_cifar100, write_image_folder=write_image_folder,
                           write_jpeg_tar=write_jpeg_tar, make_image=make_image, image_bytes=image_bytes)
