"""The registry, the data-root lookup order, error messages and the verified download."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading
import time

import numpy as np
import pytest

import nuat.data.download as dl
from nuat.data import DATASETS, find_root, get_dataset_spec, load_dataset
from nuat.errors import DataError, UsageError


def test_registry_contents():
    assert set(DATASETS) >= {"mnist", "fashion-mnist", "cifar10", "cifar10-jpeg", "cifar100",
                             "imagenet-100", "imagenet", "imagefolder"}
    expected = {"mnist": (10, (1, 28, 28), "none", "0.3"), "fashion-mnist": (10, (1, 28, 28), "none", "0.1"),
                "cifar10": (10, (3, 32, 32), "crop-flip", "8/255"),
                "cifar10-jpeg": (10, (3, 32, 32), "crop-flip", "8/255"),
                "cifar100": (100, (3, 32, 32), "crop-flip", "8/255"),
                "imagenet-100": (100, (3, 224, 224), "random-resized-crop-flip", "8/255"),
                "imagenet": (1000, (3, 224, 224), "random-resized-crop-flip", "4/255")}
    for name, (classes, shape, augment, eps) in expected.items():
        spec = get_dataset_spec(name)
        got = (spec.name, spec.num_classes, spec.image_shape, spec.augment, spec.eps)
        assert got == (name, classes, shape, augment, eps)
    assert get_dataset_spec("cifar10").eps_value == pytest.approx(8 / 255)
    assert get_dataset_spec("mnist").eps_value == pytest.approx(0.3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_dataset_spec("mnist").eps = "0.1"


def test_unknown_dataset_suggests():
    pattern = r"unknown dataset 'cifar-10'; choose one of: .*mnist.*\(did you mean 'cifar10'\?\)"
    with pytest.raises(UsageError, match=pattern):
        get_dataset_spec("cifar-10")
    with pytest.raises(UsageError, match="unknown split 'val'"):
        load_dataset("mnist", "val")


@pytest.fixture
def mnist_at(fakes):
    def make(root, first_label):
        fakes.write_mnist(root / "mnist")
        labels = np.full(20, first_label, dtype=np.uint8)
        fakes.write_idx(root / "mnist" / "t10k-labels-idx1-ubyte.gz", labels)
        return root
    return make


def test_lookup_order(tmp_path, monkeypatch, isolated_env, mnist_at):
    arg, env, system = tmp_path / "arg", tmp_path / "env", isolated_env.system[0]
    cache = isolated_env.home / ".cache" / "nuat" / "data"
    for i, root in enumerate((arg, env, cache, system)):
        mnist_at(root, i)
    monkeypatch.setenv("NUAT_DATA", str(env))

    def first_label(data_dir=None):
        return int(load_dataset("mnist", "test", data_dir).labels[0])

    assert find_root("mnist", arg) == arg and first_label(arg) == 0
    assert find_root("mnist") == env and first_label() == 1
    monkeypatch.delenv("NUAT_DATA")
    assert find_root("mnist") == cache and first_label() == 2
    import shutil

    shutil.rmtree(cache)
    assert find_root("mnist") == system and first_label() == 3
    assert find_root("mnist", tmp_path / "nothing-here") == system  # an empty data_dir is skipped


def test_debian_fashion_mnist_layout(isolated_env, fakes):
    fakes.write_mnist(isolated_env.system[1] / "fashion-mnist")
    assert find_root("fashion-mnist") == isolated_env.system[1]


def test_missing_everywhere_lists_folders(tmp_path, monkeypatch, isolated_env):
    monkeypatch.setenv("NUAT_DATA", str(tmp_path / "env"))
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", "train", tmp_path / "arg")
    assert time.monotonic() - start < 2
    msg = str(info.value)
    assert "\n" not in msg and "NUAT_OFFLINE" in msg and "data_batch_1" in msg
    cache = isolated_env.home / ".cache" / "nuat" / "data"
    for folder in (tmp_path / "arg", tmp_path / "env", cache, *isolated_env.system):
        assert str(folder / "cifar10") in msg


@pytest.mark.parametrize("name, split, named, not_named", [
    ("mnist", "test", "t10k-images-idx3-ubyte.gz", "train-images"),
    ("mnist", "train", "train-labels-idx1-ubyte.gz", "t10k"),
    ("cifar10", "test", "test_batch.bin", "data_batch"),
    ("cifar100", "train", "cifar-100-binary/train.bin", "test.bin"),
])
def test_missing_split_names_only_its_files(name, split, named, not_named, tmp_path, isolated_env):
    """Evaluation needs only the test files (a folder with them is a hit), so its error lists them."""
    with pytest.raises(DataError) as info:
        load_dataset(name, split, tmp_path)
    assert named in str(info.value) and not_named not in str(info.value).split("expected", 1)[1]
    assert named in get_dataset_spec(name).expected_files() and not_named in get_dataset_spec(name).expected_files()


def test_partial_folder_is_no_hit(tmp_path, fakes):
    fakes.write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        find_root("mnist", tmp_path)


@pytest.fixture
def http_folder(tmp_path):
    """Serve ``tmp_path/www`` over HTTP on localhost; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_verifies_and_renames(monkeypatch, isolated_env, http_folder, fakes):
    www, url = http_folder
    fakes.write_mnist(www)
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in www.iterdir()}
    source = (("http://127.0.0.1:1/", url), md5)  # first mirror refuses, second works
    spec = dataclasses.replace(get_dataset_spec("mnist"), download=functools.partial(dl.download_files, source=source))
    monkeypatch.setitem(DATASETS, "mnist", spec)
    with pytest.raises(DataError, match="NUAT_OFFLINE"):
        find_root("mnist")
    monkeypatch.delenv("NUAT_OFFLINE")
    cache = isolated_env.home / ".cache" / "nuat" / "data"
    assert find_root("mnist") == cache
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(md5)  # no temp files left
    assert len(load_dataset("mnist", "train")) == 30
    # a corrupted file is rejected and leaves nothing behind
    bad = dict(md5, **{"train-images-idx3-ubyte.gz": "0" * 32})
    with pytest.raises(dl.DownloadError, match="MD5"):
        dl.download_files(isolated_env.home / "other", ((url,), bad))
    assert not any(p.name.startswith("train-images") for p in (isolated_env.home / "other").iterdir())


def test_unreachable_download_fails_fast(monkeypatch, isolated_env):
    monkeypatch.delenv("NUAT_OFFLINE")
    source = (("http://127.0.0.1:1/", "http://nonexistent.invalid/"), {"train-images-idx3-ubyte.gz": "0" * 32})
    spec = dataclasses.replace(get_dataset_spec("mnist"), download=functools.partial(dl.download_files, source=source))
    monkeypatch.setitem(DATASETS, "mnist", spec)
    start = time.monotonic()
    with pytest.raises(DataError, match="download failed"):
        find_root("mnist")
    assert time.monotonic() - start < dl.CONNECT_TIMEOUT_S + 1
    assert not (isolated_env.home / ".cache" / "nuat" / "data" / "mnist").exists()


def test_download_archive_extracts_only_listed_files(tmp_path, monkeypatch, http_folder, fakes):
    import io
    import tarfile

    www, url = http_folder
    fakes.write_cifar10(tmp_path / "src" / "cifar-10-batches-bin")
    with tarfile.open(www / "cifar-10-binary.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
        evil = tarfile.TarInfo("../evil.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    md5 = hashlib.md5((www / "cifar-10-binary.tar.gz").read_bytes()).hexdigest()
    monkeypatch.delenv("NUAT_OFFLINE")
    dest = tmp_path / "dl" / "cifar10"
    dl.download_archive(dest, (url + "cifar-10-binary.tar.gz", md5, *dl.CIFAR10[2:]))
    assert not (tmp_path / "dl" / "evil.txt").exists() and not (dest / "cifar-10-binary.tar.gz").exists()
    assert len(load_dataset("cifar10", "train", tmp_path / "dl")) == 20


@pytest.fixture
def hanging_mirror():
    """A base URL whose server accepts the connection (the kernel's backlog) but never answers."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    sock.close()


def test_each_mirror_gets_its_own_connect_timeout(monkeypatch, tmp_path, http_folder, hanging_mirror, fakes):
    www, url = http_folder
    fakes.write_mnist(www)
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in www.iterdir()}
    monkeypatch.delenv("NUAT_OFFLINE")
    monkeypatch.setattr(dl, "CONNECT_TIMEOUT_S", 0.5)
    start = time.monotonic()
    dl.download_files(tmp_path / "got", ((hanging_mirror, url), md5))  # the first mirror hangs: the second serves
    elapsed = time.monotonic() - start
    assert sorted(p.name for p in (tmp_path / "got").iterdir()) == sorted(md5)
    # the hanging mirror cost its timeout once: the mirror that answered is asked first for the other files
    assert 0.5 <= elapsed < 1.5, elapsed


def test_download_shows_a_byte_progress_bar_unless_turned_off(monkeypatch, tmp_path, http_folder):
    from nuat.data.progress import progress_bars

    www, url = http_folder
    payload = bytes(range(256)) * 9000  # 2.3 MB: three reads of 1 MiB
    (www / "big.bin").write_bytes(payload)
    md5 = {"big.bin": hashlib.md5(payload).hexdigest()}
    bars = []

    class Bar:
        def __init__(self, *args, **kwargs):
            self.kwargs, self.done = kwargs, 0
            bars.append(self)

        def update(self, n):
            self.done += n

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(dl, "tqdm", Bar)
    monkeypatch.delenv("NUAT_OFFLINE")
    dl.download_files(tmp_path / "a", ((url,), md5))
    assert bars[0].kwargs["total"] == len(payload) and bars[0].done == len(payload)
    assert bars[0].kwargs["unit"] == "B" and bars[0].kwargs["disable"] is None  # None: shown on a terminal only
    with progress_bars(False):
        dl.download_files(tmp_path / "b", ((url,), md5))
    assert bars[1].kwargs["disable"] is True and (tmp_path / "b" / "big.bin").read_bytes() == payload
