"""Data sets, augmentation and batch loading for nuat.

Images are uint8 (N, C, H, W) tensors in 0..255 inside the data layer; the
``BatchLoader`` converts them to float32 in [0, 1] on the training device.
"""

from nuat.data.augment import augment_batch
from nuat.data.datasets import SPLITS, load_dataset, read_class_list
from nuat.data.imagedata import ArrayImageData, FolderImageData, ImageData, check_classes, subset
from nuat.data.loader import BatchLoader
from nuat.data.roots import candidate_roots, find_root
from nuat.data.spec import AUGMENT_KINDS, DATASETS, DatasetSpec, get_dataset_spec, register_dataset
from nuat.data.split import validation_split

__all__ = [
    "AUGMENT_KINDS", "DATASETS", "SPLITS", "ArrayImageData", "BatchLoader", "DatasetSpec", "FolderImageData",
    "ImageData", "augment_batch", "candidate_roots", "check_classes", "find_root", "get_dataset_spec", "load_dataset",
    "read_class_list", "register_dataset", "subset", "validation_split",
]
