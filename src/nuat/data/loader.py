"""``BatchLoader``: batches of float images in [0, 1] and int64 labels on a device.

The order of an epoch is ``perm = torch.randperm(n, generator=generator)`` drawn
when iteration starts (``arange(n)`` without shuffling), so it depends only on the
generator's state. Augmentation draws one seed per epoch from the same generator
(after ``perm``) and reseeds a generator on the target device with
``seed + batch_number`` for every batch, so a resumed epoch reproduces the same
augmentations. Random resized crops of folder data (ImageNet) are cut from the original
images while they are decoded, from CPU generators seeded the same way.
``state_dict()`` / ``load_state_dict()`` save and restore the position within an epoch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import torch

from nuat.data.augment import augment_batch
from nuat.data.imagedata import ArrayImageData, FolderImageData, ImageData
from nuat.data.spec import AUGMENT_KINDS
from nuat.errors import UsageError

__all__ = ["BatchLoader"]


class BatchLoader:
    """Iterate ``data`` (optionally only the samples at ``indices``) in batches.

    Args:
        data: the images; ArrayImageData is moved to ``device`` once and indexed there,
            other ImageData (files) are decoded by a background thread one batch ahead.
        batch_size: samples per batch (the last batch may be smaller unless ``drop_last``).
        shuffle: draw a new permutation for each epoch from ``generator``.
        generator: CPU generator for the order and the augmentation seeds
            (default: a new generator seeded with 0).
        augment: "none", "crop-flip" or "random-resized-crop-flip", applied on ``device``
            (random resized crops of FolderImageData: at decode time, from the originals).
        device: where the batches are returned.
        drop_last: drop a final incomplete batch.
        indices: int64 (M,) subset of the data to iterate (default: all N samples).
        prefetch: batches decoded ahead for file-based data.

    Yields:
        (x, y): x float32 (B, C, H, W) in [0, 1], y int64 (B,), both on ``device``.
    """

    def __init__(self, data: ImageData, batch_size: int, *, shuffle: bool = False,
                 generator: torch.Generator | None = None, augment: str = "none",
                 device: torch.device | str = "cpu", drop_last: bool = False,
                 indices: torch.Tensor | None = None, prefetch: int = 2) -> None:
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        if augment not in AUGMENT_KINDS:
            raise UsageError(f"unknown augmentation '{augment}'; choose one of: {', '.join(AUGMENT_KINDS)}")
        if generator is not None and generator.device.type != "cpu":
            raise UsageError("BatchLoader's generator must be a CPU torch.Generator")
        self.data = data
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.augment = augment
        self.device = torch.device(device)
        self.drop_last = drop_last
        self.indices = None if indices is None else torch.as_tensor(indices, dtype=torch.int64).cpu()
        self.prefetch = max(1, int(prefetch))
        self._on_device: tuple[torch.Tensor, torch.Tensor] | None = None
        self._perm: torch.Tensor | None = None  # epoch in progress: positions into indices
        self._seed = 0
        self._next = 0
        self._resume: dict[str, Any] | None = None

    @property
    def num_samples(self) -> int:
        """Samples per epoch (before ``drop_last``)."""
        return len(self.data) if self.indices is None else int(self.indices.numel())

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    # -- resumption --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Position within the current epoch: ``perm`` (int64 (n,) or None between epochs),
        ``next_batch`` (batches already yielded) and ``augment_seed``. Save the generator's
        state (``generator.get_state()``) beside it to reproduce later epochs too."""
        if self._perm is None:
            return {"perm": None, "next_batch": 0, "augment_seed": 0}
        return {"perm": self._perm.clone(), "next_batch": self._next, "augment_seed": self._seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next iteration continue the saved epoch at ``next_batch``."""
        perm = state.get("perm")
        if perm is None:
            self._resume = None
            return
        perm = torch.as_tensor(perm, dtype=torch.int64).cpu()
        n = self.num_samples
        if perm.shape != (n,) or not torch.equal(perm.sort().values, torch.arange(n)):
            raise UsageError(f"loader state does not hold a permutation of {n} samples")
        start = int(state.get("next_batch", 0))
        if not 0 <= start <= len(self):
            raise UsageError(f"loader state next_batch={start} is outside 0..{len(self)}")
        self._resume = {"perm": perm, "next_batch": start, "augment_seed": int(state.get("augment_seed", 0))}

    # -- iteration -----------------------------------------------------------------------

    def _begin_epoch(self) -> int:
        if self._resume is not None:
            r, self._resume = self._resume, None
            self._perm, self._seed = r["perm"], r["augment_seed"]
            return r["next_batch"]
        n = self.num_samples
        self._perm = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        self._seed = int(torch.randint(0, 2**62, (1,), generator=self.generator)) if self.augment != "none" else 0
        return 0

    def _batch_index(self, perm: torch.Tensor, k: int) -> torch.Tensor:
        pos = perm[k * self.batch_size:(k + 1) * self.batch_size]
        return pos if self.indices is None else self.indices.to(pos.device)[pos]

    def _augments_at_decode(self) -> bool:
        """Random resized crops of folder data are cut from the original images while they
        are decoded (as torchvision does), not from the decoded square on the device."""
        return self.augment == "random-resized-crop-flip" and isinstance(self.data, FolderImageData)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start = self._begin_epoch()
        on_device = self.augment != "none" and not self._augments_at_decode()
        aug_gen = torch.Generator(device=self.device) if on_device else None
        batches = (self._array_batches if isinstance(self.data, ArrayImageData) else self._threaded_batches)(start)
        try:
            for k, (x, y) in enumerate(batches, start):
                if aug_gen is not None:
                    aug_gen.manual_seed((self._seed + k) % 2**63)
                    x = augment_batch(x, self.augment, aug_gen)
                self._next = k + 1
                yield x.to(torch.float32).div_(255.0), y
        finally:
            batches.close()
        self._perm, self._next = None, 0

    def _array_batches(self, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        assert isinstance(self.data, ArrayImageData) and self._perm is not None
        if self._on_device is None:
            self._on_device = (self.data.images.to(self.device), self.data.labels.to(self.device))
        images, labels = self._on_device
        perm = self._perm.to(self.device)
        if self.indices is not None and self.indices.device != self.device:
            self.indices = self.indices.to(self.device)
        for k in range(start, len(self)):
            index = self._batch_index(perm, k)
            # index_select, not images[index]: the same batch, and on a CPU ~13x faster for MNIST
            # (benchmarks/cpu/batch_gather.py): advanced indexing goes through a general gather
            yield images.index_select(0, index), labels.index_select(0, index)

    def _threaded_batches(self, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        assert self._perm is not None
        perm, stop = self._perm, threading.Event()
        seed = self._seed if self._augments_at_decode() else None
        pin = self.device.type == "cuda"
        out: queue.Queue = queue.Queue(maxsize=self.prefetch)

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            try:
                for k in range(start, len(self)):
                    index = self._batch_index(perm, k).cpu()
                    if seed is None:
                        x = self.data.get_batch(index)
                    else:  # the same per-batch seed as on-device augmentation: resumable
                        x = self.data.get_batch(index, augment_seed=(seed + k) % 2**63)
                    y = self.data.labels[index]
                    if not put(("ok", x.pin_memory() if pin else x, y.pin_memory() if pin else y)):
                        return
                put(("end", None, None))
            except BaseException as exc:  # re-raised in the consumer
                put(("error", exc, None))

        thread = threading.Thread(target=work, name="nuat-batch-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                kind, x, y = out.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise x
                # pinned + non_blocking: the copies queue behind the device's work, no host sync
                yield x.to(self.device, non_blocking=pin), y.to(self.device, non_blocking=pin)
        finally:
            stop.set()
            thread.join()
