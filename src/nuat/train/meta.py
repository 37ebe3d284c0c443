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


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name ("AMD EPYC", from ``cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_kernels() -> str:
    """Which vector instructions torch's CPU kernels use: ATen's dispatch level ("AVX512", "AVX2",
    "DEFAULT"; the ``ATEN_CPU_CAPABILITY`` setting caps it) and oneDNN's cap where
    ``ONEDNN_MAX_CPU_ISA`` sets one. Why it is recorded: the same code, seed and thread count give
    different float sums, and so different runs, under different instruction sets
    (docs/reliability.md, "Reproducing a run bit for bit")."""
    capability = torch.backends.cpu.get_cpu_capability()
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return f"{capability} kernels" + (f", oneDNN up to {onednn}" if onednn else "")


def machine() -> str:
    """A one-line description of the machine: GPU name, or CPU model, architecture, core count,
    kernel instruction set and torch threads; then torch and Python versions."""
    if torch.cuda.is_available():
        dev = torch.cuda.get_device_name(0)
    else:
        dev = (f"{cpu_name()} {platform.machine()} CPU x{os.cpu_count()} "
               f"({cpu_kernels()}, torch threads {torch.get_num_threads()})")
    return f"{dev}, torch {torch.__version__}, Python {platform.python_version()}"


def provenance() -> dict[str, str]:
    return {"nuat_version": nuat.__version__, "commit": git_commit(), "machine": machine()}
