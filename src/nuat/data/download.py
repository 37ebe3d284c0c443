"""Download of the official MNIST, Fashion-MNIST and CIFAR-10/100 (binary) files.

Checksums: the data-set authors publish MD5 sums only (CIFAR web page, the
Fashion-MNIST README; the MNIST MD5s are the ones torchvision and others use for
the original files). We do not know an official SHA-256 for these files and do not
invent one, so downloads are verified against those published MD5 sums.

Downloads go to a temporary file in the destination folder and are renamed into
place only after the checksum matched, with a progress bar on a terminal
(``nuat.data.progress``). ``NUAT_OFFLINE=1`` skips downloading; without it, each
mirror in turn gets ``CONNECT_TIMEOUT_S`` seconds to answer (so a mirror that hangs
does not cost the next one its chance, and an offline machine fails within that
times the number of mirrors). The mirror that served a file is tried first for the
next ones.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from nuat.data.progress import bar_disable
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


def _open(urls: list[str]) -> tuple[object, int]:
    """Open the first reachable URL, each given its own ``CONNECT_TIMEOUT_S`` to answer;
    returns (response, index of its URL)."""
    errors = []
    for index, url in enumerate(urls):
        try:
            response = _urlopen_within(url, CONNECT_TIMEOUT_S)
            sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
            if sock is not None:
                sock.settimeout(READ_TIMEOUT_S)
            return response, index
        except (urllib.error.URLError, socket.timeout, OSError, ValueError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
    raise DownloadError("; ".join(errors) or "no mirror to try")


def _length(response) -> int | None:
    """The response's Content-Length, if it gives a sane one."""
    try:
        value = int(response.headers.get("Content-Length", ""))
    except (AttributeError, TypeError, ValueError):
        return None
    return value if value >= 0 else None


def _fetch(urls: list[str], dest: Path, md5: str) -> int:
    """Download to a temp file beside ``dest``, check the MD5, rename to ``dest``; returns the
    index of the URL that served it. A byte-count bar (``nuat.data.progress``) shows the transfer."""
    response, index = _open(urls)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name, suffix=".part", dir=dest.parent)
    digest = hashlib.md5(usedforsecurity=False)
    bar = tqdm(total=_length(response), desc=f"download {dest.name}", unit="B", unit_scale=True,
               unit_divisor=1024, leave=False, disable=bar_disable())
    try:
        with response, os.fdopen(fd, "wb") as out, bar:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise DownloadError(f"{response.geturl()} has MD5 {digest.hexdigest()}, expected {md5}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except (OSError, socket.timeout) as exc:
        raise DownloadError(f"{dest.name}: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return index


def download_files(folder: Path, source: tuple[tuple[str, ...], dict[str, str]]) -> None:
    """Fetch every ``{name: md5}`` file of ``source`` from its mirrors into ``folder``."""
    if offline():
        raise DownloadError("NUAT_OFFLINE is set")
    mirrors, files = list(source[0]), source[1]
    for name, md5 in files.items():
        if not (folder / name).is_file():
            served = _fetch([m + name for m in mirrors], folder / name, md5)
            mirrors.insert(0, mirrors.pop(served))  # the mirror that answered goes first next time


def download_archive(folder: Path, source: tuple[str, str, str, list[str]]) -> None:
    """Fetch a tar.gz, verify it and extract only the listed regular files to ``folder/<subdir>/``."""
    if offline():
        raise DownloadError("NUAT_OFFLINE is set")
    url, md5, subdir, names = source
    archive = folder / url.rsplit("/", 1)[1]
    if not archive.is_file():
        _fetch([url], archive, md5)
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
