"""IDX and CIFAR binary readers on small generated files, including broken ones."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from nuat.data import load_dataset
from nuat.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from nuat.errors import DataError


def test_idx_roundtrip_gz_and_plain(tmp_path, fakes):
    a = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    for name in ("x-idx3-ubyte.gz", "x-idx3-ubyte"):
        path = fakes.write_idx(tmp_path / name, a)
        assert np.array_equal(read_idx(path, IMAGES_MAGIC), a)
    labels = np.arange(7, dtype=np.uint8)
    assert np.array_equal(read_idx(fakes.write_idx(tmp_path / "l.gz", labels), LABELS_MAGIC), labels)


@pytest.mark.parametrize("case", ["magic", "truncated", "too-long", "no-header", "bad-gzip", "cut-gzip"])
def test_idx_errors_name_the_file(tmp_path, fakes, case):
    a = np.zeros((4, 28, 28), dtype=np.uint8)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    if case == "magic":
        fakes.write_idx(path, a, magic=LABELS_MAGIC)
    elif case == "truncated":
        fakes.write_idx(path, a, cut=10)
    elif case == "too-long":
        path.write_bytes(gzip.compress(gzip.decompress(fakes.write_idx(path, a).read_bytes()) + b"\0"))
    elif case == "no-header":
        path.write_bytes(gzip.compress(b"\0\0"))
    elif case == "bad-gzip":
        path.write_bytes(b"this is not gzip data at all")
    else:
        path.write_bytes(gzip.compress(b"\0" * 5000)[:30])
    with pytest.raises(DataError) as info:
        read_idx(path, IMAGES_MAGIC)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_mnist_loader_on_generated_files(tmp_path, fakes):
    written = fakes.write_mnist(tmp_path / "mnist", n_train=30, n_test=20)
    for split in ("train", "test"):
        d = load_dataset("mnist", split, tmp_path)
        images, labels = written[split]
        assert d.images.shape == (len(labels), 1, 28, 28) and d.images.dtype == torch.uint8
        assert np.array_equal(d.images[:, 0].numpy(), images)
        assert np.array_equal(d.labels.numpy(), labels) and d.labels.dtype == torch.int64


def test_mnist_count_mismatch(tmp_path, fakes):
    fakes.write_mnist(tmp_path / "fashion-mnist")
    fakes.write_idx(tmp_path / "fashion-mnist" / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz"):
        load_dataset("fashion-mnist", "train", tmp_path)


@pytest.mark.parametrize("nested", [True, False])
def test_cifar10_binary(tmp_path, fakes, nested):
    folder = tmp_path / "cifar10" / ("cifar-10-batches-bin" if nested else "")
    written = fakes.write_cifar10(folder, per_file=4)
    train = load_dataset("cifar10", "train", tmp_path)
    test = load_dataset("cifar10", "test", tmp_path)
    assert len(train) == 20 and len(test) == 4 and train.image_shape == (3, 32, 32)
    assert np.array_equal(train.images.numpy(), written["train"][0])
    assert np.array_equal(train.labels.numpy(), written["train"][1])
    assert np.array_equal(test.images.numpy(), written["test"][0])
    assert train.classes == [f"class{i}" for i in range(10)]
    # the channel planes: byte 1 of a record is red pixel (0, 0), byte 1025 green (0, 0)
    raw = np.fromfile(folder / "data_batch_1.bin", dtype=np.uint8)
    assert train.images[0, 0, 0, 0] == raw[1] and train.images[0, 1, 0, 0] == raw[1 + 1024]
    assert train.images[0, 0, 0, 1] == raw[2] and train.images[0, 0, 1, 0] == raw[1 + 32]


def test_cifar10_default_class_names_and_bad_size(tmp_path, fakes):
    folder = tmp_path / "cifar10"
    fakes.write_cifar10(folder, meta=False)
    assert load_dataset("cifar10", "test", tmp_path).classes[:2] == ["airplane", "automobile"]
    with open(folder / "test_batch.bin", "ab") as f:
        f.write(b"\1\2\3")
    with pytest.raises(DataError, match="test_batch.bin"):
        load_dataset("cifar10", "test", tmp_path)


def test_cifar100_binary_uses_fine_labels(tmp_path, fakes):
    written = fakes.write_cifar100(tmp_path / "cifar100" / "cifar-100-binary", n=6)
    d = load_dataset("cifar100", "train", tmp_path)
    images, labels = written["train"]
    assert len(d) == 6 and np.array_equal(d.images.numpy(), images)
    assert np.array_equal(d.labels.numpy(), labels[:, 1])
    assert len(d.classes) == 100 and d.classes[5] == "fine5"
    assert len(load_dataset("cifar100", "test", tmp_path)) == 6


def test_no_pickle_in_the_data_layer():
    import pathlib

    import nuat.data

    for path in pathlib.Path(nuat.data.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "allow_pickle=True" not in text and "torch.load" not in text, path
