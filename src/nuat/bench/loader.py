"""Throughput of the training data loader on its own (``nuat bench --loader``): the loop's
``BatchLoader`` with the data set's training augmentation, shuffled, on the bench's device,
nothing else running. For file data sets (ImageNet) one row per decode-thread count, so that
the streaming path can be sized against the training step it has to feed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from nuat.bench.timing import summarize, synchronize
from nuat.data import BatchLoader, FolderImageData, get_dataset_spec, load_dataset
from nuat.errors import UsageError


def bench_loader(dataset: str, *, batch_size: int, device: torch.device, data_dir: str | None = None,
                 batches: int = 20, trials: int = 3, seed: int = 0, decode_threads: tuple[int, ...] = (),
                 log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Seconds per batch (median over ``trials`` of ``batches`` batches each, wall clock, device
    synchronised at both ends) of the training loader of ``dataset``. Each trial starts a new
    epoch and leaves its first batch untimed (the prefetch thread's start and first decode).
    Folder data: one row for 1 decode thread, the default count and each of ``decode_threads``."""
    spec = get_dataset_spec(dataset)
    data = load_dataset(dataset, "train", data_dir)
    files = isinstance(data, FolderImageData)
    counts: list[int | None] = sorted({1, data.decode_threads, *decode_threads}) if files else [None]
    timed = min(batches, len(data) // batch_size - 1)
    if timed < 1:
        raise UsageError(f"--loader needs at least 2 full batches of {batch_size}; {dataset} has {len(data)} images")
    rows = []
    for threads in counts:
        if threads is not None:
            data.decode_threads = threads
        loader = BatchLoader(data, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed),
                             augment=spec.augment, device=device, drop_last=True)
        seconds = []
        for _ in range(trials):
            it = iter(loader)
            next(it)
            synchronize(device)
            start = time.perf_counter()
            for _ in range(timed):
                next(it)
            synchronize(device)
            seconds.append((time.perf_counter() - start) / timed)
            it.close()
        s = summarize(seconds)
        rows.append({"dataset": spec.name, "augment": spec.augment, "source": "files, streamed" if files else
                     "in memory, on the device", "decode_threads": threads, "batch_size": batch_size,
                     "batches_timed": timed, "trials": trials, "seconds_per_batch": s.to_dict(),
                     "images_per_s": batch_size / s.median, "seconds": seconds})
        log(f"bench: loader {spec.name}" + (f", {threads} decode threads" if threads else "")
            + f": {batch_size / s.median:.0f} images/s")
    return rows


def markdown_section(rows: list[dict[str, Any]], methods: list[dict[str, Any]]) -> list[str]:
    """The report's loader table; with the methods' images/s, how far the loader outpaces the
    fastest timed training step (below 1: the step would wait for data)."""
    fastest = max((m["images_per_s"] for m in methods), default=None)
    head = ["data set", "source", "augmentation", "decode threads", "ms / batch (quartiles)", "images / s"]
    if fastest:
        head.append("/ fastest method's images/s")
    lines = ["## Data loader (training batches alone)", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        s = r["seconds_per_batch"]
        threads = "-" if r["decode_threads"] is None else str(r["decode_threads"])
        row = [r["dataset"], r["source"], r["augment"], threads,
               f"{1e3 * s['median']:.2f} ({1e3 * s['q1']:.2f}-{1e3 * s['q3']:.2f})", f"{r['images_per_s']:.0f}"]
        if fastest:
            row.append(f"{r['images_per_s'] / fastest:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    return lines
