"""Host reads: operator calls that make the host wait for a value the device computes.

On CUDA each of them synchronises the host with the GPU, which drains the queue of launched
kernels; inside a training step that costs the launch latency every iteration (docs/speed.md, "No
host synchronisation inside the step"). This module finds them on any device, a CPU included, by
watching the ATen operators a function calls (a ``TorchDispatchMode``), so a step can be checked on
a machine without a GPU (``tests/bench/test_host_reads.py`` checks every registered method; ``nuat
bench --check-syncs`` reports them). It sees operator calls, not driver calls: what happens inside
an operator (a caching allocator freeing memory, say) is left to CUDA's sync debug mode
(:func:`nuat.bench.timing.count_host_syncs`).
"""

from __future__ import annotations

import os
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: ``value``: the host reads a tensor's value (``.item()``, ``float(t)``, ``if t:``, ``torch.equal``)
VALUE_OPS = frozenset({"_local_scalar_dense", "is_nonzero", "equal"})
#: ``shape``: the output's size depends on the data, so the host must read it before allocating
SHAPE_OPS = frozenset({"nonzero", "masked_select", "_unique", "_unique2", "unique_dim", "unique_consecutive",
                       "unique_dim_consecutive", "repeat_interleave"})
#: ``solver``: linear-algebra solvers that check their error flags on the host on CUDA (the
#: nuclear norm's ``svd`` and ``gram`` backends; docs/speed.md)
SOLVER_OPS = frozenset({"_linalg_svd", "_linalg_eigh", "linalg_eig", "_linalg_check_errors"})
#: indexing with a boolean mask selects a data-dependent number of elements (a ``nonzero`` inside)
MASK_INDEX_OPS = frozenset({"index", "index_put", "index_put_", "_index_put_impl_"})
#: ``copy``: a blocking copy between the host and another device (on CUDA the host waits for it;
#: ``non_blocking=True`` from pinned memory does not)
COPY_OPS = frozenset({"_to_copy", "copy_"})

_TORCH_DIR = os.path.dirname(torch.__file__)
#: the folder that holds the ``nuat`` package: calling lines inside it read ``nuat/...``, installed or not
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class HostRead:
    """One host read: the operator, its kind (``value``, ``shape``, ``solver``, ``copy``) and
    ``where``, the innermost calling line outside torch and this module (``path:line function``;
    the path relative to the folder holding the ``nuat`` package where it lies below it)."""

    op: str
    kind: str
    where: str

    def __str__(self) -> str:
        return f"{self.kind} {self.op} at {self.where}"


def host_read_kind(op: str, args: tuple, kwargs: dict | None = None) -> str | None:
    """The kind of host read an ATen operator call (``op``: its name without namespace or overload;
    its ``args`` and ``kwargs``) makes, or None for one that runs without the host waiting."""
    if op in VALUE_OPS:
        return "value"
    if op in SHAPE_OPS:
        if op == "repeat_interleave" and (kwargs or {}).get("output_size") is not None:
            return None  # tensor repeats with the output size given: nothing to read back
        return "shape"
    if op in SOLVER_OPS:
        return "solver"
    if op in COPY_OPS:
        return "copy" if _blocking_cross_device_copy(op, args, kwargs or {}) else None
    if op in MASK_INDEX_OPS and len(args) > 1:
        indices = args[1] if isinstance(args[1], (list, tuple)) else ()
        if any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices):
            return "shape"
    return None


def _blocking_cross_device_copy(op: str, args: tuple, kwargs: dict) -> bool:
    if op == "_to_copy":  # _to_copy(self, *, ..., device, non_blocking)
        source, target = args[0], kwargs.get("device")
        non_blocking = kwargs.get("non_blocking", False)
    else:  # copy_(self, src, non_blocking=False)
        target, source = args[0].device, args[1]
        non_blocking = args[2] if len(args) > 2 else kwargs.get("non_blocking", False)
    if target is None or not isinstance(source, torch.Tensor):
        return False
    return torch.device(target).type != source.device.type and not non_blocking


def calling_line(*skip: str) -> str:
    """The innermost line of the current Python stack outside torch, this module and the files
    ``skip`` (absolute paths), as ``path:line function`` (the path relative to the folder holding
    the ``nuat`` package where it lies below it); ``?`` if there is none."""
    skipped = {os.path.abspath(__file__), *skip}
    for frame in reversed(traceback.extract_stack()):
        path = frame.filename if frame.filename.startswith("<") else os.path.abspath(frame.filename)
        if path not in skipped and not path.startswith(_TORCH_DIR):
            short = os.path.relpath(path, _PACKAGE_PARENT) if path.startswith(_PACKAGE_PARENT + os.sep) else path
            return f"{short}:{frame.lineno} {frame.name}"
    return "?"


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[HostRead] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        op = func._schema.name.split("::")[-1]
        kind = host_read_kind(op, args, kwargs)
        if kind is not None:
            self.reads.append(HostRead(op, kind, calling_line()))
        return func(*args, **(kwargs or {}))


def record_host_reads(fn: Callable[[], object]) -> list[HostRead]:
    """Run ``fn()`` and return its host reads in call order. Compiled code runs eagerly while
    recording (torch.compile steps aside for a dispatch mode), so this is a check, not a timing."""
    recorder = _Recorder()
    with recorder:
        fn()
    return recorder.reads


def per_iteration(items: list, iterations: int) -> dict[str, float]:
    """How often each item occurs per iteration, keyed by ``str(item)``, sorted by key (host reads:
    by kind, operator and calling line)."""
    return {site: count / iterations for site, count in sorted(Counter(map(str, items)).items())}
