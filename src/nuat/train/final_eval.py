"""The short test-set evaluation printed at the end of ``nuat train``: clean and PGD-100 accuracy of
the best checkpoint(s), reloaded from disk with :func:`nuat.load_model`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nuat.attacks.pgd import pgd
from nuat.checkpoints import load_model, read_metadata
from nuat.data import BatchLoader, check_classes, load_dataset, subset
from nuat.eval.accuracy import accuracy
from nuat.eval.targets import spec_image_size
from nuat.train.config import TrainConfig

PGD_STEPS = 100


def final_evaluation(out: Path, cfg: TrainConfig, *, device: torch.device, log: Callable[[str], Any]) -> dict[str, Any]:
    """Clean and PGD-100 (uniform random start, step eps/10) accuracy on the first ``cfg.final_eval``
    test images, for ``best.safetensors`` and, where present, ``best-ema.safetensors``."""
    paths = [(name, out / f"{name}.safetensors") for name in ("best", "best-ema")]
    paths = [(name, path) for name, path in paths if path.exists()]
    # the test images at the size the model was built for (a folder split would otherwise take
    # its first image's size, which need not be the train split's); both checkpoints share it
    size = spec_image_size(read_metadata(paths[0][1]).get("model_spec")) if paths else None
    test = load_dataset(cfg.dataset, "test", cfg.data_dir, image_size=size, progress=cfg.progress)
    n = min(cfg.final_eval, len(test))
    test = subset(test, torch.arange(n))
    results: dict[str, Any] = {"n": n, "attack": f"PGD-{PGD_STEPS}, step eps/10, random start"}
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    attack = lambda m, x, y: pgd(m, x, y, eps=cfg.eps, steps=PGD_STEPS, step_size=cfg.eps / 10, generator=gen)  # noqa: E731
    for name, path in paths:
        model = load_model(path, device=device)
        check_classes(test, model.checkpoint_metadata.get("classes"), f"{path}")
        batches = lambda: BatchLoader(test, 500, shuffle=False, generator=torch.Generator(), augment="none", device=device)  # noqa: E731
        clean = accuracy(model, batches(), eps=cfg.eps)
        robust = accuracy(model, batches(), attack, eps=cfg.eps)
        results[name] = {"epoch": model.checkpoint_metadata["epoch"], "clean_acc": clean, "pgd100_acc": robust}
        log(f"test ({n} images) {name} (epoch {results[name]['epoch']}): clean {100 * clean:.2f}%  "
            f"PGD-{PGD_STEPS} {100 * robust:.2f}%")
    return results
