"""The optional fast path of the training step (GPU-oriented; every switch defaults off, i.e. the
faithful float32 step): bf16 autocast of the forward passes, channels_last memory format and
``torch.compile``. ``nuat train --fast`` turns all three on plus a nuclear-norm group size of 64
(the published M). Also the CPU allocator setting that every CPU run uses
(:func:`keep_freed_cpu_memory`). docs/speed.md has the measurements and caveats."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from typing import Any

import torch
from torch import nn

#: ``--amp`` choices: ``off`` (float32) or ``bf16`` (forward passes under bfloat16 autocast;
#: losses, the nuclear norm and all backward results stay float32).
AMP_MODES = ("off", "bf16")
#: ``--compile-mode`` choices: torch.compile's ``default``, or ``reduce-overhead``, which replays the
#: compiled graphs as CUDA graphs: one launch for a graph's kernels instead of one per kernel. The
#: eager bf16 and compiled ResNet-18 steps wait on the host for launches (H100 profile of
#: benchmarks/gpu/h100-resnet18-b512-flags-profile: the GPU is busy half of the compiled NuAT
#: step). Same arithmetic; on a CPU it compiles as ``default`` (no CUDA graphs there).
COMPILE_MODES = ("default", "reduce-overhead")
#: nuclear-norm group size that ``--fast`` sets for the NuAT family (the published M = 64)
FAST_NUCLEAR_GROUP_SIZE = 64


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager[Any]:
    """The autocast context for a step's forward passes (a no-op for ``amp == "off"``)."""
    if amp == "off":
        return contextlib.nullcontext()
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"unknown amp mode {amp!r}; choose one of: {', '.join(AMP_MODES)}")


def prepare_model(model: nn.Module, *, channels_last: bool) -> nn.Module:
    """The model in the step's memory format (in place; returns it)."""
    return model.to(memory_format=torch.channels_last) if channels_last else model


def prepare_input(x: torch.Tensor, *, channels_last: bool) -> torch.Tensor:
    """A (B, C, H, W) batch in the step's memory format."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def step_model(model: nn.Module, *, compile: bool, mode: str = "default", **options: Any) -> nn.Module:
    """What the method's passes run through: ``model`` itself, or a ``torch.compile`` wrapper that
    shares its parameters and buffers (checkpoints, EMA and validation keep using ``model``).

    Compiled with static shapes (``dynamic=False`` unless ``options`` say otherwise): by default
    the epoch's smaller last batch would make torch recompile a dynamic-shape graph that then
    serves every later full batch too; static shapes cost one extra compile for the last batch
    and keep the full batches on the graph that ``nuat bench`` times. ``mode``: one of
    :data:`COMPILE_MODES`."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; choose one of: {', '.join(COMPILE_MODES)}")
    if not compile:
        return model
    # the default mode is left unnamed: the call is then the one every earlier measurement made
    mode_option = {} if mode == "default" else {"mode": mode}
    return torch.compile(model, **{"dynamic": False, **mode_option, **options})


def begin_step(compile: bool, mode: str) -> None:
    """Mark the start of a training step (or of a timed pass) for ``reduce-overhead``'s CUDA graphs.

    Their outputs live in memory that a later replay overwrites. Torch starts a new round of
    replays once every pending backward has run, and some forwards have none (the bench's timed
    forward pass), so each step marks its start explicitly, as torch's documentation advises for
    such loops. Nothing a graph produced in an earlier step is read after the mark: a step's loss
    and statistics are tensors computed outside the graphs."""
    if compile and mode == "reduce-overhead":
        torch.compiler.cudagraph_mark_step_begin()


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_cpu_memory_kept: bool | None = None


def keep_freed_cpu_memory() -> bool:
    """Make glibc's malloc keep freed memory in the process (CPU training; once per process).

    By default glibc returns the top of the heap to the OS once more than its trim threshold is
    free, and serves large blocks with fresh ``mmap`` pages. A training step allocates and frees
    the same few megabytes of activations every iteration, so every iteration pays thousands of
    page faults for freshly zeroed pages (small-cnn / MNIST / batch 128: ``nuat bench`` counts them
    per NuAT iteration; docs/speed.md has the numbers and the command).
    Setting the trim threshold to 1 GiB and the mmap threshold to 32 MiB (its maximum) keeps the
    working set mapped; arithmetic and results are unchanged. ``NUAT_KEEP_FREED_MEMORY=0`` leaves
    malloc alone. Returns whether the setting is in effect."""
    global _cpu_memory_kept
    if _cpu_memory_kept is not None:
        return _cpu_memory_kept
    _cpu_memory_kept = False
    if os.environ.get("NUAT_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _cpu_memory_kept = bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30)) and bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20))
    return _cpu_memory_kept
