"""Where data sets live: the ordered list of data roots and the lookup of one data set.

A data root R "hits" for data set ``name`` when ``R/<name>/`` holds the expected
files of the split being loaded (a folder with only the test split serves the test
split). Roots are searched in this order, the first hit wins:

1. the ``data_dir`` argument (e.g. the CLI's ``--data-dir``),
2. ``$NUAT_DATA`` (several roots may be separated by ``os.pathsep``),
3. ``~/.cache/nuat/data`` (where downloads go),
4. the system folders ``/usr/share/datasets`` and ``/usr/local/share/datasets``
   (Debian's ``dataset-fashion-mnist`` installs ``/usr/share/datasets/fashion-mnist/``).
"""

from __future__ import annotations

import os
from pathlib import Path

from nuat.data.download import DownloadError
from nuat.data.spec import DatasetSpec, get_dataset_spec
from nuat.errors import DataError

__all__ = ["SYSTEM_ROOTS", "data_cache_dir", "candidate_roots", "search_root", "find_root"]

SYSTEM_ROOTS: tuple[Path, ...] = (Path("/usr/share/datasets"), Path("/usr/local/share/datasets"))


def data_cache_dir() -> Path:
    """``~/.cache/nuat/data``: the per-user root that downloads go to."""
    return Path.home() / ".cache" / "nuat" / "data"


def candidate_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The data roots in search order (duplicates removed)."""
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get("NUAT_DATA", "")
    roots.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p)
    roots.append(data_cache_dir())
    roots.extend(SYSTEM_ROOTS)
    unique: list[Path] = []
    for r in roots:
        if r not in unique:
            unique.append(r)
    return unique


def search_root(spec: DatasetSpec, data_dir: str | os.PathLike | None = None,
                split: str | None = None) -> Path | None:
    """The first root R whose ``R/<name>/`` holds the spec's files of ``split`` (None: of every
    split), or None."""
    for root in candidate_roots(data_dir):
        try:
            if spec.present(root / spec.name, split):
                return root
        except OSError:  # unreadable folder: not a hit
            continue
    return None


def find_root(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = True,
              split: str | None = None) -> Path:
    """The data root R holding ``R/<name>/`` for data set ``name``: its files of ``split``
    (``"train"``/``"test"``), or of every split when ``split`` is None.

    If no root hits and the data set has official downloads (MNIST, Fashion-MNIST,
    CIFAR-10/100 binary), they are fetched into ``~/.cache/nuat/data/<name>/`` unless
    ``download`` is False or ``$NUAT_OFFLINE`` is set. Otherwise raises a one-line
    DataError naming the folders searched and the files expected.
    """
    spec = get_dataset_spec(name)
    root = search_root(spec, data_dir, split)
    if root is not None:
        return root
    note = ""
    if download and spec.download is not None:
        cache = data_cache_dir()
        try:
            spec.download(cache / spec.name)
            if spec.present(cache / spec.name, split):
                return cache
            note = "; the download did not produce the expected files"
        except DownloadError as exc:
            note = f"; download failed: {exc}"
        except OSError as exc:
            note = f"; download failed: {exc}"
    searched = ", ".join(str(r / spec.name) for r in candidate_roots(data_dir))
    message = (f"dataset '{name}' not found; searched {searched}; expected {spec.expected_files(split)}"
               f" (pass --data-dir or set NUAT_DATA){note}")
    raise DataError(message.replace("\r", " ").replace("\n", " "))
