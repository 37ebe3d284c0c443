"""Download of the official MNIST, Fashion-MNIST and CIFAR-10/100 (binary) files.

Checksums: the data-set authors publish MD5 sums only (CIFAR web page, the
Fashion-MNIST README; the MNIST MD5s are the ones torchvision and others use for
the original files). We do not know an official SHA-256 for these files and do not
invent one, so downloads are verified against those published MD5 sums.

Downloads go to a temporary file in the destination folder and are renamed into
place only after the checksum matched. ``NUAT_OFFLINE=1`` skips downloading; without
it, the first connection must succeed within ``CONNECT_TIMEOUT_S`` seconds (all
mirrors together), so an offline machine fails fast.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from nuat.errors import DataError

__all__ = ["offline", "DownloadError", "download_files", "download_archive",
           "MNIST", "FASHION_MNIST", "CIFAR10", "CIFAR100"]

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0

#: (mirrors, {file name: md5})
MNIST = (
    ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
     "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
     "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
     "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
)
FASHION_MNIST = (
    ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
     "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
     "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
     "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
)
#: (url, md5 of the archive, folder inside the archive, files to extract from it)
CIFAR10 = ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
           "cifar-10-batches-bin",
           [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin", "batches.meta.txt"])
CIFAR100 = ("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8",
            "cifar-100-binary", ["train.bin", "test.bin", "fine_label_names.txt", "coarse_label_names.txt"])


class DownloadError(Exception):
    """A download was skipped or failed; the message is one line."""


def offline() -> bool:
    """True when ``$NUAT_OFFLINE`` is set to anything but ``""``/``0``."""
    return os.environ.get("NUAT_OFFLINE", "") not in ("", "0")


def _urlopen_within(url: str, seconds: float):
    """``urlopen`` that gives up after ``seconds`` even when name resolution hangs
    (``timeout`` alone does not bound DNS look-ups)."""
    result: dict = {}

    def run() -> None:
        try:
            result["response"] = urllib.request.urlopen(url, timeout=seconds)
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    thread = threading.Thread(target=run, name="nuat-connect", daemon=True)
    thread.start()
    thread.join(seconds)
    if "response" in result:
        return result["response"]
    if "error" in result:
        raise result["error"]
    raise socket.timeout(f"no connection within {seconds:.1f} s")


def _open(urls: list[str], deadline: float):
    """Open the first reachable URL; the connection phase shares one deadline."""
    errors = []
    for url in urls:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            response = _urlopen_within(url, min(left, CONNECT_TIMEOUT_S))
            sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
            if sock is not None:
                sock.settimeout(READ_TIMEOUT_S)
            return response
        except (urllib.error.URLError, socket.timeout, OSError, ValueError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
    raise DownloadError("; ".join(errors) or "connection timed out")


def _fetch(urls: list[str], dest: Path, md5: str, deadline: float) -> None:
    """Download to a temp file beside ``dest``, check the MD5, rename to ``dest``."""
    response = _open(urls, deadline)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name, suffix=".part", dir=dest.parent)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with response, os.fdopen(fd, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise DownloadError(f"{response.geturl()} has MD5 {digest.hexdigest()}, expected {md5}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except (OSError, socket.timeout) as exc:
        raise DownloadError(f"{dest.name}: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def download_files(folder: Path, source: tuple[tuple[str, ...], dict[str, str]]) -> None:
    """Fetch every ``{name: md5}`` file of ``source`` from its mirrors into ``folder``."""
    if offline():
        raise DownloadError("NUAT_OFFLINE is set")
    mirrors, files = source
    for name, md5 in files.items():
        if not (folder / name).is_file():
            _fetch([m + name for m in mirrors], folder / name, md5, time.monotonic() + CONNECT_TIMEOUT_S)


def download_archive(folder: Path, source: tuple[str, str, str, list[str]]) -> None:
    """Fetch a tar.gz, verify it and extract only the listed regular files to ``folder/<subdir>/``."""
    if offline():
        raise DownloadError("NUAT_OFFLINE is set")
    url, md5, subdir, names = source
    archive = folder / url.rsplit("/", 1)[1]
    if not archive.is_file():
        _fetch([url], archive, md5, time.monotonic() + CONNECT_TIMEOUT_S)
    target = folder / subdir
    target.mkdir(exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name in names:
                try:
                    info = tar.getmember(f"{subdir}/{name}")
                except KeyError:
                    continue  # optional text files
                src = tar.extractfile(info) if info.isfile() else None
                if src is None:
                    continue
                fd, tmp = tempfile.mkstemp(prefix=name, suffix=".part", dir=target)
                with src, os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(src, out)
                os.chmod(tmp, 0o644)
                os.replace(tmp, target / name)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DataError(f"cannot extract {archive}: {exc}") from None
    archive.unlink()
