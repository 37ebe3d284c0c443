"""The ``--device`` value: ``auto`` or a device this machine has, checked before any work."""

from __future__ import annotations

import torch

from nuat.errors import UsageError


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The ``--device`` values usable here: auto, cpu, then cuda, cuda:0... and mps where present."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if _mps_available():
        names.append("mps")
    return names


def _usable(device: torch.device) -> bool:
    if device.type == "cpu":
        return device.index in (None, 0)
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index is None or device.index < torch.cuda.device_count())
    if device.type == "mps":
        return _mps_available() and device.index in (None, 0)
    return False  # other backends: the training and attack code is not written for them


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else the CPU) or ``name`` when this machine has that device;
    :class:`UsageError` (one line, with the usable values) otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):  # not a device string at all ("bogus", "cuda:x")
        device = None
    if device is None or not _usable(device):
        problem = "is not a device" if device is None else "is not available on this machine"
        raise UsageError(f"--device {name!r} {problem}; choose one of: {', '.join(available_devices())}")
    return device
