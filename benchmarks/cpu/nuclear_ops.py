"""ATen operator calls of one nuclear-norm value + gradient, per backend (docs/speed.md).

On a GPU these small operations cost host dispatch time rather than device time, so their count is
what a host-bound step pays for the regulariser. Counted with torch.profiler on the CPU, nested
calls included, for logits of 512 x 10 in groups of 64 (the GPU fast path's shape).

    PYTHONPATH=src python benchmarks/cpu/nuclear_ops.py [--rows 512] [--classes 10] [--group 64]

Any checkout's ``src`` can be put on PYTHONPATH: the script only calls ``nuat.losses.nuclear_norm``.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from nuat.losses import nuclear_norm


def aten_calls(rows: int, classes: int, group: int | None, backend: str) -> int:
    a = torch.randn(rows, classes, requires_grad=True)
    b = torch.randn(rows, classes)
    nuclear_norm(a, b, group_size=group, backend=backend).backward()  # warm-up: lazy initialisation
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        nuclear_norm(a, b, group_size=group, backend=backend).backward()
    return sum(1 for event in prof.events() if event.name.startswith("aten::"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--group", type=int, default=64, help="rows per group (0: the whole matrix)")
    args = p.parse_args()
    group = args.group or None
    print(f"| backend | ATen calls ({args.rows} x {args.classes}, group {group or 'whole'}; value + gradient) |")
    print("|---|---:|")
    for backend in ("svd", "gram", "newton-schulz"):
        print(f"| {backend} | {aten_calls(args.rows, args.classes, group, backend)} |")
    print(f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
