"""``nuat bench --profile N``: where a method's iteration spends its time (``torch.profiler``).

The timed trials say how far a method runs above its floor; this says why. For each method and
variant, N untimed iterations run under the profiler, after the timing, so it never disturbs it.
Recorded per iteration:

- on CUDA, **device busy ms**: the union of the GPU kernels' time intervals. Measured time minus
  busy time is time the GPU waited for the host (launch gaps, host synchronisations, Python),
  which no faster kernel can win back. Also the number of kernels launched;
- the number of ATen operator calls, nested calls included. This counts dispatcher work, the
  host's share of a small-batch or host-bound step;
- the operators with the most self time: device time on CUDA, CPU time on the CPU.

The pass probes are profiled the same way, so each method also gets the floor of those figures
from its pass counts, as the timed floor is built (``nuat.bench.timing.pass_floor``). On CUDA, a method
whose busy time is near its busy floor spends its extra measured time on the host; one whose busy
time exceeds the busy floor has extra kernels, and its top operators name them.

The profiler adds host overhead to the iterations it watches, so only device-side figures and
counts are read from them; the measured ms come from the unprofiled trials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from nuat.bench.timing import PASS_NAMES, pass_floor

#: operators listed per method and variant
TOP_OPS = 8


def _self_device_us(avg: Any) -> float:
    # torch >= 2.4 names it self_device_time_total; older releases self_cuda_time_total
    return float(getattr(avg, "self_device_time_total", getattr(avg, "self_cuda_time_total", 0.0)))


def _union_us(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of [start, end) intervals (microseconds)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def profile_iterations(fn: Callable[[], object], iterations: int, device: torch.device) -> dict[str, Any]:
    """Run ``fn`` (``iterations`` training iterations) under ``torch.profiler``; returns per-iteration
    figures: ``device_busy_ms`` and ``kernels`` (CUDA only, else ``None``), ``aten_ops``, and
    ``top_ops`` (name, calls and self ms per iteration, by device time on CUDA, CPU time otherwise)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    on_cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    if on_cuda:
        torch.cuda.synchronize(device)
    with profile(activities=activities) as prof:
        fn()
        if on_cuda:
            torch.cuda.synchronize(device)
    averages = prof.key_averages()
    aten_calls = sum(a.count for a in averages if a.key.startswith("aten::"))
    out: dict[str, Any] = {"iterations": iterations, "aten_ops": aten_calls / iterations,
                           "device_busy_ms": None, "kernels": None}
    if on_cuda:
        # device-side events are kernels, copies and memsets, plus the GPU spans of record_function
        # ranges (e.g. the optimiser's step), which cover the gaps between their kernels: left out
        kernels = [(e.time_range.start, e.time_range.end) for e in prof.events()
                   if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)]
        out["device_busy_ms"] = _union_us(kernels) / 1e3 / iterations
        out["kernels"] = len(kernels) / iterations
        weight: Callable[[Any], float] = _self_device_us
    else:
        weight = lambda a: float(a.self_cpu_time_total)  # noqa: E731
    # operators only (on CUDA their kernels' time is credited to them); the kernel rows themselves
    # would count the same time twice under unreadable names
    ranked = sorted((a for a in averages if a.device_type == DeviceType.CPU and weight(a) > 0),
                    key=weight, reverse=True)[:TOP_OPS]
    out["top_ops_clock"] = "device" if on_cuda else "cpu"
    out["top_ops"] = [{"name": a.key, "calls": a.count / iterations, "self_ms": weight(a) / 1e3 / iterations}
                      for a in ranked]
    return out


def _maybe(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def profile_floor(passes: list[float], pass_profiles: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """``floor_aten_ops`` and ``floor_device_busy_ms`` (``None`` off CUDA): the pass probes' figures
    combined by a method's pass counts ``[F, B_in, B_full]`` per example, as its timed floor
    (:func:`nuat.bench.timing.pass_floor`)."""
    out: dict[str, float | None] = {}
    for key in ("aten_ops", "device_busy_ms"):
        per_pass = {name: pass_profiles[name][key] for name in PASS_NAMES}
        out[f"floor_{key}"] = None if None in per_pass.values() else pass_floor(passes, per_pass)
    return out


def markdown_section(methods: list[dict[str, Any]]) -> list[str]:
    """The report's profile section, for the methods that carry a ``profile`` entry."""
    rows = [m for m in methods if m.get("profile")]
    if not rows:
        return []
    first = rows[0]["profile"]
    on_cuda = first["device_busy_ms"] is not None
    lines = [f"## Profile (torch.profiler, {first['iterations']} untimed iterations each)", ""]
    if on_cuda:
        lines += ["Device busy = union of the GPU kernels' intervals; the rest of the measured time the GPU "
                  "waited for the host.", "",
                  "| method | variant | measured ms | device busy ms | busy floor ms | busy / measured | kernels "
                  "| ATen calls | ATen calls floor |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    else:
        lines += ["| method | variant | measured ms | ATen calls | ATen calls floor |", "|---|---|---:|---:|---:|"]
    for m in rows:
        p, ms = m["profile"], 1e3 * m["seconds_per_iteration"]["median"]
        calls = f"{p['aten_ops']:.0f} | {_maybe(p.get('floor_aten_ops'), '.0f')}"
        if on_cuda:
            lines.append(f"| {m['method']} | {m['variant']} | {ms:.2f} | {p['device_busy_ms']:.2f} | "
                         f"{_maybe(p.get('floor_device_busy_ms'), '.2f')} | {p['device_busy_ms'] / ms:.2f} | "
                         f"{p['kernels']:.0f} | {calls} |")
        else:
            lines.append(f"| {m['method']} | {m['variant']} | {ms:.2f} | {calls} |")
    clock = "device" if on_cuda else "CPU"
    lines += ["", f"Operators with the most self {clock} time, per iteration (calls, ms):", ""]
    for m in rows:
        ops = "; ".join(f"`{o['name']}` {o['calls']:g}x {o['self_ms']:.2f}" for o in m["profile"]["top_ops"])
        lines.append(f"- {m['method']}/{m['variant']}: {ops}")
    return lines
