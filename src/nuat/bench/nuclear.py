"""Micro-benchmark of the nuclear-norm backends (``nuat bench --nuclear``): value + gradient time
of ``nuclear_norm`` on (M, C) logit differences, the batch as one matrix and in groups, each
backend against the float64 ``svdvals`` reference in value and gradient."""

from __future__ import annotations

from typing import Any

import torch

from nuat.bench.timing import CLOCKS, count_host_syncs, summarize, time_block
from nuat.losses import NUCLEAR_BACKENDS, nuclear_norm

BACKENDS = tuple(b for b in NUCLEAR_BACKENDS if b != "auto")


def bench_nuclear(rows: int, classes: int, *, group_sizes: tuple[int | None, ...] = (None, 64),
                  device: torch.device | str = "cpu", trials: int = 15, repeats: int = 20,
                  seed: int = 0, clock: str = "wall") -> list[dict[str, Any]]:
    """For each group size and backend: seconds per value + backward (median over interleaved
    trials), relative value error and max gradient error against the float64 SVD reference."""
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    a64 = torch.randn(rows, classes, generator=g, dtype=torch.float64) * 3
    b64 = torch.randn(rows, classes, generator=g, dtype=torch.float64)
    out = []
    for group in group_sizes:
        if group is not None and group >= rows:
            continue
        ref_a = a64.clone().requires_grad_(True)
        ref = nuclear_norm(ref_a, b64, group_size=group, backend="svd")
        ref.backward()
        a = a64.float().to(device).requires_grad_(True)
        b = b64.float().to(device)
        fns = {}
        for backend in BACKENDS:
            def fn(backend: str = backend) -> None:
                a.grad = None
                nuclear_norm(a, b, group_size=group, backend=backend).backward()
            fns[backend] = fn
        seconds: dict[str, list[float]] = {k: [] for k in fns}
        for fn in fns.values():
            time_block(fn, 3, device)
        for trial in range(trials):
            names = list(fns)
            names = names[trial % len(names):] + names[:trial % len(names)]
            for name in names:
                seconds[name].append(time_block(fns[name], repeats, device)[CLOCKS.index(clock)])
        for backend in BACKENDS:
            a.grad = None
            value = nuclear_norm(a, b, group_size=group, backend=backend)
            value.backward()
            out.append({
                "rows": rows, "classes": classes, "group_size": group, "backend": backend, "clock": clock,
                "seconds": summarize(seconds[backend]).to_dict(),
                "value_rel_error": abs(float(value.detach()) - float(ref.detach())) / abs(float(ref.detach())),
                "grad_max_abs_error": float((a.grad.double().cpu() - ref_a.grad).abs().max()),
                "host_syncs": count_host_syncs(fns[backend], device),
            })
    return out


def markdown_section(rows: list[dict[str, Any]]) -> list[str]:
    clock = rows[0].get("clock", "wall") if rows else "wall"
    lines = [f"## Nuclear norm backends (value + gradient, float32 input, {clock} clock)", "",
             "Errors are against the float64 `svdvals` reference; `auto` is `svd` on the CPU, `gram` elsewhere.", "",
             "| M x C | group | backend | us | quartiles (us) | rel. value error | max grad error | host syncs |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        s = r["seconds"]
        syncs = "" if r["host_syncs"] is None else str(r["host_syncs"])
        lines.append(f"| {r['rows']} x {r['classes']} | {r['group_size'] or 'whole'} | {r['backend']} | "
                     f"{1e6 * s['median']:.0f} | {1e6 * s['q1']:.0f}-{1e6 * s['q3']:.0f} | "
                     f"{r['value_rel_error']:.1e} | {r['grad_max_abs_error']:.1e} | {syncs} |")
    return lines
