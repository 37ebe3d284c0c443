"""The real data in the shared folder: MNIST, Fashion-MNIST and a few cifar10-jpeg members."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from nuat.data import ArrayImageData, load_dataset, validation_split
from nuat.data.folder import read_tar_split

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(scope="module")
def mnist_train(real_data_dir):
    return load_dataset("mnist", "train", real_data_dir)


def test_mnist_train_shapes_and_counts(mnist_train):
    d = mnist_train
    assert isinstance(d, ArrayImageData)
    assert len(d) == 60000 and d.image_shape == (1, 28, 28)
    assert d.images.dtype == torch.uint8 and d.images.shape == (60000, 1, 28, 28)
    assert d.labels.dtype == torch.int64 and d.labels.shape == (60000,)
    assert torch.bincount(d.labels).tolist() == MNIST_TRAIN_COUNTS
    assert d.classes == [str(i) for i in range(10)]
    # real digits: black background, some white strokes, mean intensity ~33
    assert int(d.images[:, :, 0, 0].max()) == 0 and int(d.images.max()) == 255
    assert 30 < d.images.float().mean().item() < 36
    batch = d.get_batch(torch.tensor([0, 59999]))
    assert batch.shape == (2, 1, 28, 28) and batch.dtype == torch.uint8
    assert d.labels[:3].tolist() == [5, 0, 4]  # the well-known first MNIST labels


def test_mnist_test_split(real_data_dir):
    d = load_dataset("mnist", "test", real_data_dir)
    assert len(d) == 10000 and d.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(d.labels, minlength=10).sum() == 10000
    assert d.labels[:3].tolist() == [7, 2, 1]


def test_fashion_mnist(real_data_dir):
    train = load_dataset("fashion-mnist", "train", real_data_dir)
    test = load_dataset("fashion-mnist", "test", real_data_dir)
    assert (len(train), len(test)) == (60000, 10000)
    assert train.image_shape == (1, 28, 28) and train.images.dtype == torch.uint8
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"


def test_validation_split_on_mnist(mnist_train):
    labels = mnist_train.labels
    train_idx, val_idx = validation_split(labels, per_class=100)
    assert val_idx.dtype == train_idx.dtype == torch.int64
    assert len(val_idx) == 1000 and len(train_idx) == 59000
    assert torch.bincount(labels[val_idx]).tolist() == [100] * 10
    assert torch.all(val_idx[1:] > val_idx[:-1]) and torch.all(train_idx[1:] > train_idx[:-1])
    assert torch.cat([train_idx, val_idx]).unique().numel() == 60000  # disjoint and complete
    y = labels.numpy()
    for c in range(10):  # the first 100 of each class, in data-set order
        expected = np.flatnonzero(y == c)[:100]
        assert np.array_equal(np.sort(val_idx.numpy()[y[val_idx.numpy()] == c]), expected)


def test_real_cifar10_jpeg_members(real_data_dir):
    tar = real_data_dir / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
    if not tar.is_file():
        pytest.fail(f"{tar} is missing")
    members, classes = read_tar_split(tar, "train", limit=5)
    assert len(members) == 5 and classes == ["airplane"]
    from nuat.data.folder import decode_images

    images = decode_images([m[2] for m in members], 5, 32, "real")
    assert images.shape == (5, 3, 32, 32) and images.dtype == np.uint8 and images.std() > 10


def test_real_cifar10_jpeg_prefixes_are_class_balanced(real_data_dir):
    """The archive is grouped by class; "the first 1,000 test images" must not be 1,000 airplanes."""
    tar = real_data_dir / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
    if not tar.is_file():
        pytest.fail(f"{tar} is missing")
    members, classes = read_tar_split(tar, "test")
    assert len(members) == 10000 and len(classes) == 10
    counts = Counter(m[0] for m in members[:1000])
    assert sorted(counts) == classes and set(counts.values()) == {100}
    assert [m[0] for m in members[:10]] == classes  # one of each class, in label order
