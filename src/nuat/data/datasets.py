"""The registered data sets and ``load_dataset``.

name           format                                         classes  image      augment                   eps
mnist          gzipped IDX                                    10       1x28x28    none                      0.3
fashion-mnist  gzipped IDX                                    10       1x28x28    none                      0.1
cifar10        CIFAR-10 binary (.bin)                         10       3x32x32    crop-flip                 8/255
cifar10-jpeg   ImageFolder in cifar10-jpeg.tar.gz or unpacked 10       3x32x32    crop-flip                 8/255
cifar100       CIFAR-100 binary (.bin), fine labels           100      3x32x32    crop-flip                 8/255
imagenet-100   ImageNet tree + 100-class list                 100      3x224x224  random-resized-crop-flip  8/255
imagenet       ImageNet tree train/, val/                     1000     3x224x224  random-resized-crop-flip  4/255
imagefolder    any train/, test/ or val/ <class>/ tree        (data)   (data)     crop-flip                 8/255
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from nuat.data import download as dl
from nuat.data.cifar import CIFAR10_FILES, CIFAR100_FILES, cifar_folder, load_cifar10, load_cifar100
from nuat.data.folder import cached_decode, find_split_dir, load_image_folder
from nuat.data.idx import FASHION_MNIST_CLASSES, MNIST_CLASSES, MNIST_FILES, idx_file, load_mnist_like
from nuat.data.imagedata import ImageData
from nuat.data.progress import progress_bars
from nuat.data.roots import find_root, search_root
from nuat.data.spec import DatasetSpec, get_dataset_spec, of_split, register_dataset
from nuat.errors import DataError, UsageError

__all__ = ["load_dataset", "read_class_list", "SPLITS"]

SPLITS = ("train", "test")
#: folder names tried for each split of an ImageFolder tree
SPLIT_DIRS = {"train": ("train",), "test": ("test", "val")}
IMAGENET_SPLIT_DIRS = {"train": ("train",), "test": ("val", "test")}
CIFAR10_JPEG_TAR = "cifar10-jpeg.tar.gz"


def _has_dirs(folder: Path, dirs: dict[str, tuple[str, ...]], split: str | None = None) -> bool:
    """Whether ``folder`` holds the folder of ``split`` (None: of every split)."""
    return all(find_split_dir(folder, names) is not None for names in of_split(dirs, split))


# -- MNIST and Fashion-MNIST ------------------------------------------------------------

def _mnist_present(folder: Path, split: str | None = None) -> bool:
    return all(idx_file(folder, n) is not None for names in of_split(MNIST_FILES, split) for n in names)


def _mnist_loader(classes: list[str], folder: Path, split: str, image_size=None, class_list=None) -> ImageData:
    return load_mnist_like(folder, split, classes)


_MNIST_EXPECTED = {split: ", ".join(names) for split, names in MNIST_FILES.items()}
register_dataset(DatasetSpec("mnist", 10, (1, 28, 28), "none", "0.3", partial(_mnist_loader, MNIST_CLASSES),
                             _mnist_present, _MNIST_EXPECTED, partial(dl.download_files, source=dl.MNIST)))
register_dataset(DatasetSpec("fashion-mnist", 10, (1, 28, 28), "none", "0.1",
                             partial(_mnist_loader, FASHION_MNIST_CLASSES), _mnist_present, _MNIST_EXPECTED,
                             partial(dl.download_files, source=dl.FASHION_MNIST)))

# -- CIFAR binary ------------------------------------------------------------------------

register_dataset(DatasetSpec(
    "cifar10", 10, (3, 32, 32), "crop-flip", "8/255",
    lambda folder, split, image_size=None, class_list=None: load_cifar10(folder, split),
    lambda folder, split=None: cifar_folder(folder, "cifar-10-batches-bin", CIFAR10_FILES, split) is not None,
    {"train": "cifar-10-batches-bin/data_batch_1.bin to data_batch_5.bin",
     "test": "cifar-10-batches-bin/test_batch.bin"},
    partial(dl.download_archive, source=dl.CIFAR10)))
register_dataset(DatasetSpec(
    "cifar100", 100, (3, 32, 32), "crop-flip", "8/255",
    lambda folder, split, image_size=None, class_list=None: load_cifar100(folder, split),
    lambda folder, split=None: cifar_folder(folder, "cifar-100-binary", CIFAR100_FILES, split) is not None,
    {"train": "cifar-100-binary/train.bin", "test": "cifar-100-binary/test.bin"},
    partial(dl.download_archive, source=dl.CIFAR100)))

# -- cifar10-jpeg: decoded once into memory, cached ----------------------------------------


def _cifar10_jpeg_loader(folder: Path, split: str, image_size=None, class_list=None) -> ImageData:
    source = folder if (folder / split).is_dir() else folder / CIFAR10_JPEG_TAR
    return cached_decode("cifar10-jpeg", split, source, 32)


register_dataset(DatasetSpec(
    "cifar10-jpeg", 10, (3, 32, 32), "crop-flip", "8/255", _cifar10_jpeg_loader,
    lambda folder, split=None: (folder / CIFAR10_JPEG_TAR).is_file()
    or _has_dirs(folder, {"train": ("train",), "test": ("test",)}, split),
    f"{CIFAR10_JPEG_TAR} or train/<class>/*.jpg and test/<class>/*.jpg"))

# -- lazily decoded folders ----------------------------------------------------------------


def _split_dir(folder: Path, split: str, dirs: dict[str, tuple[str, ...]]) -> Path:
    found = find_split_dir(folder, dirs[split])
    if found is None:
        raise DataError(f"no {' or '.join(dirs[split])} folder in {folder}")
    return found


def _eval_resize(image_size: int) -> int:
    """Shorter side before the center crop at evaluation: 256 for 224 (the usual 0.875 ratio)."""
    return round(image_size * 256 / 224)


def _imagefolder_loader(folder: Path, split: str, image_size=None, class_list=None) -> ImageData:
    classes = read_class_list(Path(class_list)) if class_list is not None else None
    return load_image_folder(_split_dir(folder, split, SPLIT_DIRS), image_size, None, classes)


def _imagenet_loader(folder: Path, split: str, image_size=None, class_list=None) -> ImageData:
    size = image_size or 224
    classes = read_class_list(Path(class_list)) if class_list is not None else None
    # Both splits' un-augmented view is the evaluation one (shorter side 256, centre 224): the
    # training view is a random resized crop of each original, cut while decoding (BatchLoader).
    return load_image_folder(_split_dir(folder, split, IMAGENET_SPLIT_DIRS), size, _eval_resize(size), classes)


def _imagenet100_tree(folder: Path, split: str | None = None) -> Path:
    """``folder`` itself if it holds the split's folder (``train/``; ``val/`` or ``test/``: a
    pre-cut copy), else ``../imagenet``."""
    return folder if _has_dirs(folder, IMAGENET_SPLIT_DIRS, split) else folder.parent / "imagenet"


def _imagenet100_present(folder: Path, split: str | None = None) -> bool:
    return _has_dirs(folder, IMAGENET_SPLIT_DIRS, split) or (
        (folder / "classes.txt").is_file() and _has_dirs(folder.parent / "imagenet", IMAGENET_SPLIT_DIRS, split))


def _imagenet100_loader(folder: Path, split: str, image_size=None, class_list=None) -> ImageData:
    tree = _imagenet100_tree(folder, split)
    if class_list is None and (folder / "classes.txt").is_file():
        class_list = folder / "classes.txt"
    if class_list is None and tree != folder:
        raise DataError(f"imagenet-100 needs a class list: {folder / 'classes.txt'} or the class_list argument")
    return _imagenet_loader(tree, split, image_size, class_list)


register_dataset(DatasetSpec(
    "imagefolder", None, None, "crop-flip", "8/255", _imagefolder_loader,
    lambda folder, split=None: _has_dirs(folder, SPLIT_DIRS, split),
    "train/<class>/*.jpg|png and test/ (or val/)<class>/*.jpg|png",
    folder_images=True))
register_dataset(DatasetSpec(
    "imagenet", 1000, (3, 224, 224), "random-resized-crop-flip", "4/255", _imagenet_loader,
    lambda folder, split=None: _has_dirs(folder, IMAGENET_SPLIT_DIRS, split),
    "train/<wnid>/*.JPEG and val/<wnid>/*.JPEG",
    folder_images=True))
register_dataset(DatasetSpec(
    "imagenet-100", 100, (3, 224, 224), "random-resized-crop-flip", "8/255", _imagenet100_loader,
    _imagenet100_present,
    "train/ and val/ <wnid> folders, or classes.txt (one wnid a line) beside an imagenet/ tree",
    folder_images=True))


def read_class_list(path: Path) -> list[str]:
    """Class folder names from ``path``: one per line, blank lines and ``#`` comments skipped."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # -sig: a byte-order mark is no class name
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read class list {path}: {exc}") from None
    names = [line.split("#", 1)[0].strip() for line in lines]
    names = [n for n in names if n]
    if not names:
        raise DataError(f"class list {path} is empty")
    if len(set(names)) != len(names):
        raise DataError(f"class list {path} names a class twice")
    return names


def load_dataset(name: str, split: str, data_dir: str | os.PathLike | None = None, *,
                 image_size: int | None = None, class_list: str | os.PathLike | None = None,
                 download: bool = True, progress: bool = True) -> ImageData:
    """Load split ``"train"`` or ``"test"`` of data set ``name`` (see ``find_root`` for the lookup).

    Args:
        data_dir: a data root searched first, holding ``<data_dir>/<name>/`` (e.g. ``mnist/``
            with the four IDX files).
        image_size: output side in pixels for the file-based sets (imagenet, imagenet-100,
            imagefolder; default 224 for ImageNet, the native size otherwise). Ignored for
            the in-memory sets, which keep their native size.
        class_list: file with one class folder name per line (imagenet-100's 100 wnids,
            or a subset of an imagefolder/imagenet tree).
        download: allow downloading the official files when absent.
        progress: allow progress bars (downloads, decoding into memory), shown on a terminal
            only; False (the commands' ``--no-progress``) turns them off.

    Returns uint8 images (via ``get_batch``) and int64 labels; for ImageNet the test
    split is ``val/``, resized to 256/224 of ``image_size`` and center-cropped. Only the files
    of ``split`` need to be on disk. Wrap it in :class:`nuat.data.BatchLoader` for float batches
    in [0, 1].

    Raises :class:`nuat.errors.DataError` when the files are not found (or fail to download) or
    are malformed, :class:`nuat.errors.UsageError` for an unknown name, split or image_size.
    """
    spec = get_dataset_spec(name)
    if split not in SPLITS:
        raise UsageError(f"unknown split '{split}'; choose one of: {', '.join(SPLITS)}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise UsageError(f"image_size must be a positive integer, got {image_size!r}")
    with progress_bars(progress):
        if spec.name == "imagenet-100" and class_list is not None and search_root(spec, data_dir, split) is None:
            root = find_root("imagenet", data_dir, download=False, split=split)
            return _imagenet_loader(root / "imagenet", split, image_size, class_list)
        root = find_root(spec.name, data_dir, download=download, split=split)
        return spec.loader(root / spec.name, split, image_size=image_size, class_list=class_list)
