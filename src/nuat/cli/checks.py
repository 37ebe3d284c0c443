"""Checks the commands share, run before any expensive work: the ``--out`` path, the ``--seed`` and
comma-separated number lists (the ``--device`` is checked by :func:`nuat.train.device.resolve_device`).

Each raises :class:`~nuat.errors.UsageError` (``--seed``: argparse's error, as its type) with one line
naming the bad value and what is allowed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from nuat.errors import UsageError

#: the seeds torch's generators take: a signed 64-bit integer
SEED_MIN, SEED_MAX = -2**63, 2**63 - 1


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``.`` for a relative path with none)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def _check_writable_folder(folder: Path, flag: str, value: str) -> None:
    """``folder`` (an existing directory) accepts new entries: probed by creating and removing an
    empty temporary folder (``os.access`` says yes to root even on read-only file systems)."""
    try:
        probe = tempfile.mkdtemp(prefix=".nuat-write-check-", dir=folder)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"{flag} {value}: cannot write in {folder} ({reason}); give a path in a writable folder")
    os.rmdir(probe)


def check_out(value: str | os.PathLike, flag: str = "--out", *, prefix: bool = False,
              suffixes: tuple[str, ...] = ()) -> Path:
    """Check an output path before any work, and return it as a :class:`Path`; nothing is created.

    ``prefix=False``: ``value`` is an output folder; it may exist (as a folder) or not.
    ``prefix=True``: ``value`` is a file name without suffix (``nuat bench``: ``<out>.json``,
    ``<out>.md``, ...); it must not be a folder, nor may ``<out><suffix>`` for any of ``suffixes``
    (the files to be written), and its parent is checked as the folder.
    Walking up from the folder, the first path that exists must be a writable folder; a file
    there means some component of ``value`` is a file. UsageError (one line) otherwise.
    """
    text = os.fspath(value)
    path = Path(text).expanduser()
    if not text.strip():
        raise UsageError(f"{flag} is empty; give a path")
    if prefix:
        if path.is_dir():
            raise UsageError(f"{flag} {text} is a folder; give a path without suffix, e.g. {text}/bench")
        for suffix in suffixes:
            if path.with_name(path.name + suffix).is_dir():
                raise UsageError(f"{flag} {text}: {text}{suffix} is a folder, so the {suffix} file cannot be "
                                 "written; give another path")
        folder = path.parent
    else:
        folder = path
        if os.path.lexists(path) and not path.is_dir():
            raise UsageError(f"{flag} {text} exists and is not a folder; give a folder path")
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise UsageError(f"{flag} {text}: {existing} is a file, not a folder; give a path whose parents are folders")
    _check_writable_folder(existing, flag, text)
    return path


def data_dir(text: str) -> str:
    """``--data-dir``'s argparse type: an empty value (``--data-dir "$UNSET"``) would silently mean
    the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the value is empty; give the folder holding <dataset>/ folders")
    return text


def seed(text: str) -> int:
    """``--seed``'s argparse type: an integer torch's generators take (a signed 64-bit one); a larger
    seed passed the parser and failed mid-run with an overflow traceback (train, sanity, bench)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}; give an integer") from None
    if not SEED_MIN <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"seed {text} is out of range; give an integer from {SEED_MIN} to {SEED_MAX}")
    return value


def float_list(text: str, flag: str, expected: str) -> list[float]:
    """``"0.71,0.86"`` -> [0.71, 0.86]; one UsageError line naming ``flag`` and ``expected`` otherwise
    (the range of each value is the caller's to check)."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{flag} {text!r} is invalid; {expected}") from None
