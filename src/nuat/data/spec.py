"""The data-set registry: ``DATASETS`` maps a name to its frozen ``DatasetSpec``."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nuat.errors import UsageError
from nuat.projections import parse_eps

__all__ = ["DatasetSpec", "DATASETS", "register_dataset", "get_dataset_spec", "of_split", "AUGMENT_KINDS"]

AUGMENT_KINDS = ("none", "crop-flip", "random-resized-crop-flip")


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about one data set.

    Attributes:
        name: registry name, also the folder name ``<root>/<name>/``.
        num_classes: number of classes; None when read from the data (``imagefolder``).
        image_shape: (C, H, W) of the images the loader yields by default; None when
            read from the data.
        augment: training augmentation kind, one of ``AUGMENT_KINDS``.
        eps: default L-inf radius as written in papers, e.g. ``"8/255"``.
        loader: ``loader(folder, split, image_size, class_list) -> ImageData``; ``folder``
            is ``<root>/<name>``, ``split`` is ``"train"`` or ``"test"``.
        present: ``present(folder, split=None) -> bool``, whether ``folder`` holds the files of
            ``split`` (``"train"``/``"test"``; None: of every split).
        expected: human-readable list of the expected files (for error messages); a dict maps
            ``"train"``/``"test"`` to the files of that split.
        download: ``download(folder)`` fetching the official files into ``folder``, or None.
        folder_images: True when images are decoded lazily from files (``image_size`` applies).
    """

    name: str
    num_classes: int | None
    image_shape: tuple[int, int, int] | None
    augment: str
    eps: str
    loader: Callable = field(repr=False)
    present: Callable[[Path, str | None], bool] = field(repr=False)
    expected: str | dict[str, str] = ""
    download: Callable[[Path], None] | None = field(default=None, repr=False)
    folder_images: bool = False

    def expected_files(self, split: str | None = None) -> str:
        """The files a folder needs for ``split`` (None: for every split), for error messages."""
        if isinstance(self.expected, str):
            return self.expected
        return ", ".join(of_split(self.expected, split))

    @property
    def eps_value(self) -> float:
        """The default eps as a float, e.g. 0.0313... for ``"8/255"``."""
        return parse_eps(self.eps)


DATASETS: dict[str, DatasetSpec] = {}


def of_split(by_split: dict[str, Any], split: str | None) -> list[Any]:
    """What ``by_split`` (split name -> files or folder names) holds for ``split``: ``"train"`` or
    ``"test"``, or every split when ``split`` is None (the ``present`` checks of the data sets)."""
    return list(by_split.values()) if split is None else [by_split[split]]


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to ``DATASETS`` (a later registration of the same name replaces it)."""
    if spec.augment not in AUGMENT_KINDS:
        raise ValueError(f"augment must be one of {AUGMENT_KINDS}, got {spec.augment!r}")
    parse_eps(spec.eps)
    DATASETS[spec.name] = spec
    return spec


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec registered as ``name``; UsageError with a suggestion for unknown names."""
    try:
        return DATASETS[name]
    except KeyError:
        pass
    close = difflib.get_close_matches(name.lower(), list(DATASETS), n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise UsageError(f"unknown dataset '{name}'; choose one of: {', '.join(DATASETS)}{hint}")
