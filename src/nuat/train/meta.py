"""Provenance of a run: library version, git commit, machine."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

import nuat


def git_commit() -> str:
    """The commit of the source tree nuat is imported from (``+dirty`` if modified), or "unknown".
    ``$NUAT_COMMIT``, where set, wins: a copy of the tree sent to another machine (a GPU lease)
    may carry a stale ``.git`` or none, so the script that copied it names the commit."""
    if os.environ.get("NUAT_COMMIT"):
        return os.environ["NUAT_COMMIT"]
    here = Path(nuat.__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> str:
    """A one-line description of the machine (CPU count or GPU name, torch version)."""
    import os

    if torch.cuda.is_available():
        dev = torch.cuda.get_device_name(0)
    else:
        dev = f"{platform.processor() or platform.machine()} CPU x{os.cpu_count()} (torch threads {torch.get_num_threads()})"
    return f"{dev}, torch {torch.__version__}, Python {platform.python_version()}"


def provenance() -> dict[str, str]:
    return {"nuat_version": nuat.__version__, "commit": git_commit(), "machine": machine()}
