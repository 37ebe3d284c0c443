"""Write an ImageNet-layout stand-in from the real CIFAR-10 JPEGs, for timing the streaming path.

ImageNet itself is not on these machines. Its loader decodes full-size JPEGs (typically about
500 x 375) while it trains, which is what `nuat bench --loader` has to time; this writes real
CIFAR-10 photographs, enlarged to that size (bicubic, JPEG quality 90), as
``<out>/imagenet/{train,val}/<class>/<k>.JPEG``. The images are for timing only: enlarged
32 x 32 photographs are no substitute for ImageNet's content.

Usage: python scripts/speed/imagenet_standin.py OUT [--per-class 100] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from nuat.data.datasets import CIFAR10_JPEG_TAR
from nuat.data.folder import read_tar_split
from nuat.data.roots import find_root
from nuat.errors import DataError

SIZE = (500, 375)  # width x height: ImageNet's most common image size


def write_split(tar: Path, split: str, folder: Path, per_class: int) -> int:
    """The first ``per_class`` images of each class of ``split`` in ``tar``, enlarged, as
    ``folder/<class>/<name>.JPEG``; returns how many were written."""
    members, classes = read_tar_split(tar, split)
    written = dict.fromkeys(classes, 0)
    bar = tqdm(total=per_class * len(classes), desc=f"stand-in {folder.name}", unit="img", disable=None)
    for cls, name, data in members:  # class-interleaved order: every prefix is balanced
        if written[cls] >= per_class:
            continue
        target = folder / cls / (Path(name).stem + ".JPEG")
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(io.BytesIO(data)) as img:
            img.convert("RGB").resize(SIZE, Image.BICUBIC).save(target, quality=90)
        written[cls] += 1
        bar.update()
        if all(n >= per_class for n in written.values()):
            break
    bar.close()
    return sum(written.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--per-class", type=int, default=100, help="training images per class (val: a fifth)")
    p.add_argument("--data-dir", default="../shared/data", help="root holding cifar10-jpeg/")
    args = p.parse_args(argv)
    if args.per_class < 1:
        p.error(f"--per-class {args.per_class} is invalid; it must be positive")
    if args.out.exists() and any(args.out.iterdir()):
        p.exit(2, f"imagenet_standin.py: error: {args.out} already holds files; choose another folder\n")
    try:
        tar = find_root("cifar10-jpeg", args.data_dir, download=False) / "cifar10-jpeg" / CIFAR10_JPEG_TAR
        if not tar.is_file():
            raise DataError(f"{tar} not found (the stand-in is cut from the packed archive)")
        # written into a sibling folder and renamed at the end: a failure leaves no half stand-in
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=args.out.name + ".", suffix=".partial", dir=args.out.parent))
        try:
            for split, folder, per_class in (("train", "train", args.per_class),
                                             ("test", "val", max(1, args.per_class // 5))):
                count = write_split(tar, split, tmp / "imagenet" / folder, per_class)
                print(f"{folder}: {count} images of {SIZE[0]} x {SIZE[1]} in {args.out / 'imagenet' / folder}")
            if args.out.exists():
                args.out.rmdir()  # empty (checked above)
            tmp.rename(args.out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except (DataError, OSError) as exc:
        p.exit(2, f"imagenet_standin.py: error: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
