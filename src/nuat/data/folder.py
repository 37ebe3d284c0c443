"""ImageFolder layout ``<split>/<class>/<file>.jpg|png``: lazy loading, tarballs, decode cache.

Classes are the sorted class-folder names (label i = i-th name). Samples are sorted by file name
within each class, then the classes are interleaved round-robin (the first image of every class,
then the second of every class, ...): the order is reproducible, and every prefix -- the "first N
test images" of an evaluation, ``--train-limit N`` -- holds the classes in equal shares, as the
shuffled files of the original CIFAR-10 do. (Class-sorted order would make the first 1,000
cifar10-jpeg test images all airplanes.)
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import tempfile
import zlib
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from nuat.data.imagedata import ArrayImageData, FolderImageData, decode_errors, fit_image
from nuat.errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "interleave_classes", "scan_image_folder", "find_split_dir", "load_image_folder",
           "read_tar_split", "decode_images", "decoded_cache_dir", "cached_decode"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
CACHE_VERSION = "3"  # 2: class-interleaved order; 3: torchvision's resize and crop arithmetic (fit_image)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def interleave_classes(labels: Sequence[Hashable]) -> list[int]:
    """Indices that reorder ``labels`` (class indices or names) round-robin over the classes:
    rank 0 of every class (in order of first appearance), then rank 1, ...; within a class the
    order is kept."""
    by_class: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    groups = list(by_class.values())
    longest = max((len(g) for g in groups), default=0)
    return [g[rank] for rank in range(longest) for g in groups if rank < len(g)]


def find_split_dir(folder: Path, names: Sequence[str]) -> Path | None:
    """The first of ``folder/<name>`` (for name in ``names``) that is a directory, else None."""
    for name in names:
        if (folder / name).is_dir():
            return folder / name
    return None


def scan_image_folder(split_dir: Path,
                      classes: Sequence[str] | None = None) -> tuple[list[str], torch.Tensor, list[str]]:
    """List ``split_dir/<class>/*.{jpg,jpeg,png}``.

    Returns (paths, labels int64 (N,), classes). ``classes`` defaults to all sorted
    sub-folders; when given (e.g. the ImageNet-100 list) only those are read, in that order.
    """
    if classes is None:
        classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(f"no class folders in {split_dir}")
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        class_dir = split_dir / name
        if not class_dir.is_dir():
            raise DataError(f"class folder {class_dir} does not exist")
        files = sorted(e.name for e in os.scandir(class_dir) if e.is_file() and _is_image(e.name))
        paths.extend(str(class_dir / f) for f in files)
        labels.extend([label] * len(files))
    if not paths:
        raise DataError(f"no .jpg/.jpeg/.png images in the class folders of {split_dir}")
    order = interleave_classes(labels)
    return [paths[i] for i in order], torch.tensor([labels[i] for i in order], dtype=torch.int64), list(classes)


def load_image_folder(split_dir: Path, image_size: int | None = None, resize_to: int | None = None,
                      classes: Sequence[str] | None = None) -> FolderImageData:
    """Lazy FolderImageData over ``split_dir``; ``image_size`` None = the first image's shorter side."""
    paths, labels, classes = scan_image_folder(split_dir, classes)
    if image_size is None:
        from PIL import Image

        try:
            with Image.open(paths[0]) as img:
                image_size = min(img.size)
        except decode_errors() as exc:
            raise DataError(f"cannot decode image {paths[0]}: {exc}") from None
    return FolderImageData(paths, labels, classes, image_size, resize_to)


def read_tar_split(tar_path: Path, split: str,
                   limit: int | None = None) -> tuple[list[tuple[str, str, bytes]], list[str]]:
    """Stream a ``.tar[.gz]`` once and collect the ``<split>/<class>/<file>`` image members
    (only the first ``limit`` found in archive order, if given).

    Returns (members as (class, name, bytes), sorted by file name within each class and
    interleaved over the classes (see ``interleave_classes``), sorted classes).
    A common top folder (``./`` or ``name/``) before ``<split>/`` is allowed.
    """
    members: list[tuple[str, str, bytes]] = []
    try:
        with tarfile.open(tar_path, mode="r|*") as tar:
            for info in tar:
                parts = [p for p in info.name.split("/") if p not in ("", ".")]
                if not info.isfile() or len(parts) < 3 or parts[-3] != split or not _is_image(parts[-1]):
                    continue
                f = tar.extractfile(info)
                if f is not None:
                    members.append((parts[-2], parts[-1], f.read()))
                if limit is not None and len(members) >= limit:
                    break
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
        raise DataError(f"cannot read archive {tar_path}: {exc}") from None
    if not members:
        raise DataError(f"archive {tar_path} holds no {split}/<class>/*.jpg|png images")
    members.sort(key=lambda m: (m[0], m[1]))
    members = [members[i] for i in interleave_classes([m[0] for m in members])]
    return members, sorted({m[0] for m in members})


def decode_images(sources: Iterable[bytes | str], count: int, size: int, desc: str,
                  names: Sequence[str] | None = None) -> np.ndarray:
    """Decode ``count`` images (file bytes or paths) to uint8 (N, 3, size, size), with a tqdm bar
    on a terminal unless turned off (``nuat.data.progress``, ``load_dataset(..., progress=False)``).
    ``names``: what an error calls each image (default: the path, or its position in ``desc``)."""
    from PIL import Image
    from tqdm import tqdm

    from nuat.data.progress import bar_disable

    out = np.empty((count, size, size, 3), dtype=np.uint8)
    bar = tqdm(sources, total=count, desc=desc, unit="img", disable=bar_disable(), leave=False)
    for i, src in enumerate(bar):
        try:
            with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as img:
                out[i] = np.asarray(fit_image(img.convert("RGB"), size), dtype=np.uint8)
        except decode_errors() as exc:
            name = names[i] if names is not None else src if isinstance(src, str) else f"{i} of {desc}"
            raise DataError(f"cannot decode image {name}: {_reason(exc)}") from None
    return out.transpose(0, 3, 1, 2)


def _reason(exc: Exception) -> str:
    """PIL's message, without the ``<_io.BytesIO object at 0x...>`` it names an in-memory file by."""
    return re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "it", str(exc))


def decoded_cache_dir() -> Path:
    """``$NUAT_CACHE`` if set, else ``~/.cache/nuat/decoded``."""
    env = os.environ.get("NUAT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "nuat" / "decoded"


def _source_key(source: Path) -> str:
    """Hash of the source's identity: path, size and mtime (of every file for a folder)."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{source.resolve()}".encode())
    if source.is_dir():
        for root, dirs, files in os.walk(source):
            dirs.sort()
            for name in sorted(files):
                st = os.stat(os.path.join(root, name))
                h.update(f"|{os.path.relpath(os.path.join(root, name), source)}:{st.st_size}:{st.st_mtime_ns}".encode())
    else:
        st = source.stat()
        h.update(f"|{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _read_cache(path: Path) -> ArrayImageData | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels, classes = z["images"], z["labels"], [str(c) for c in z["classes"]]
        return ArrayImageData(torch.from_numpy(images), torch.from_numpy(labels), classes)
    except Exception:  # a broken or foreign cache file is rebuilt, never trusted
        return None


def _write_cache(path: Path, data: ArrayImageData) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, images=data.images.numpy(), labels=data.labels.numpy(),
                     classes=np.array(data.classes, dtype=str))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError:  # a read-only cache folder only costs speed
        if "tmp" in locals() and os.path.exists(tmp):
            os.unlink(tmp)


def cached_decode(name: str, split: str, source: Path, size: int) -> ArrayImageData:
    """Decode ``<split>/<class>/*`` from ``source`` (a tar[.gz] or an unpacked folder
    holding ``<split>/``) into memory, as uint8 (N, 3, size, size), caching the arrays in
    ``decoded_cache_dir()/<name>-<split>-<size>px-<key>.npz`` (written atomically, read
    without pickle; the key hashes the source's identity, so an edited source is decoded anew)."""
    cache = decoded_cache_dir() / f"{name}-{split}-{size}px-{_source_key(source)}.npz"
    if cache.is_file():
        data = _read_cache(cache)
        if data is not None and data.image_shape[1:] == (size, size):
            return data
    if source.is_dir():
        paths, labels, classes = scan_image_folder(source / split)
        images = decode_images(paths, len(paths), size, f"{name} {split}")
    else:
        members, classes = read_tar_split(source, split)
        index = {c: i for i, c in enumerate(classes)}
        labels = torch.tensor([index[m[0]] for m in members], dtype=torch.int64)
        images = decode_images((m[2] for m in members), len(members), size, f"{name} {split}",
                               names=[f"{source}:{split}/{m[0]}/{m[1]}" for m in members])
    data = ArrayImageData(torch.from_numpy(np.ascontiguousarray(images)), labels, classes)
    _write_cache(cache, data)
    return data
