"""Snapshot and restore of a whole :class:`~nuat.train.loop.Run` (see ``nuat.train.state``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nuat.train.progress import EpochProgress
from nuat.train.state import (
    load_latest_state,
    optimizer_restore,
    optimizer_snapshot,
    pack_module_states,
    rng_restore,
    rng_snapshot,
    save_state,
    unpack_module_states,
)

if TYPE_CHECKING:
    from nuat.train.loop import Run


def snapshot(run: "Run", epoch: int, progress: EpochProgress) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """All tensors and JSON facts needed to continue ``run`` exactly where it is."""
    tensors = pack_module_states("model", run.model.state_dict())
    for name, ema in run.averages.items():
        tensors.update(pack_module_states(f"average/{name}", ema.state_dict()))
    opt_tensors, opt_info = optimizer_snapshot(run.optimizer)
    tensors.update(opt_tensors)
    rng_tensors, rng_info = rng_snapshot()
    tensors.update(rng_tensors)
    tensors["rng/data"] = run.train_loader.generator.get_state()
    tensors["rng/attack"] = run.attack_generator.get_state()  # a CPU byte tensor, on every device
    loader = run.train_loader.state_dict()
    if loader["perm"] is not None:
        tensors["loader/perm"] = loader["perm"]
    tensors.update({f"sums/{k}": v for k, v in progress.sums.items()})
    info = {
        "epoch": epoch, "batch": progress.batch, "passes": progress.passes, "seconds": progress.seconds,
        "iteration": run.iteration, "best": run.best, "metrics_lines": run.metrics_lines,
        "loader": {"next_batch": loader["next_batch"], "augment_seed": loader["augment_seed"]},
        "optimizer": opt_info, "rng": rng_info, "method": run.method.state_dict(),
        "train_seconds": run.train_seconds, "health": run.health, "config": run.cfg.to_dict(),
        "rollbacks": sorted(run.rollbacks), "remedy_active": run.remedy_active,
        "attack_rng_device": run.attack_generator.device.type,
    }
    return tensors, info


def save(run: "Run", epoch: int, progress: EpochProgress, *, name: str | None = None) -> Path:
    tensors, info = snapshot(run, epoch, progress)
    return save_state(run.out / "state", run.iteration, tensors, info, name=name)


def restore(run: "Run", tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> tuple[int, EpochProgress]:
    """Put ``run`` back in the saved state; returns (epoch, progress of that epoch)."""
    run.model.load_state_dict(unpack_module_states("model", tensors))
    for name, ema in run.averages.items():
        ema.model.load_state_dict(unpack_module_states(f"average/{name}", tensors))
    optimizer_restore(run.optimizer, tensors, info["optimizer"])
    rng_restore(tensors, info["rng"])
    run.train_loader.generator.set_state(tensors["rng/data"])
    restore_attack_generator(run.attack_generator, tensors["rng/attack"], info.get("attack_rng_device"),
                             seed=run.cfg.seed, iteration=info["iteration"])
    if "loader/perm" in tensors:
        run.train_loader.load_state_dict({"perm": tensors["loader/perm"], **info["loader"]})
    else:
        run.train_loader.load_state_dict({"perm": None})
    run.method.load_state_dict(info["method"])
    run.iteration = info["iteration"]
    run.best = dict(info["best"])
    run.metrics_lines = info["metrics_lines"]
    run.train_seconds = info["train_seconds"]
    run.health = dict(info["health"])
    # a state saved inside a redone epoch carries its remedy; states of older versions have none
    run.rollbacks = set(info.get("rollbacks", []))
    run.remedy_active = bool(info.get("remedy_active", False))
    run.method.set_remedy(run.remedy_active)
    sums = {k[len("sums/"):]: v.to(run.device) for k, v in tensors.items() if k.startswith("sums/")}
    progress = EpochProgress(sums=sums, passes=list(info["passes"]), batch=info["batch"], seconds=info["seconds"])
    return info["epoch"], progress


def restore_attack_generator(generator: torch.Generator, state: torch.Tensor, saved_device: str | None, *,
                             seed: int, iteration: int) -> None:
    """Set the attack generator to its saved ``state``. ``Generator.set_state`` takes the CPU byte
    tensor ``get_state`` gave, for a CUDA generator too (moving it to the GPU made every resume of
    a CUDA run fail). A generator of another device type (a run resumed with another ``--device``)
    cannot take it (a CPU state is 5,056 bytes, a CUDA one 16): it is reseeded from the run's seed
    and iteration instead, with a warning, and the attacks' random starts then differ from an
    uninterrupted run's."""
    import warnings

    from nuat.errors import RunWarning

    if saved_device in (None, generator.device.type):  # None: a state of an older version, device unknown
        try:
            generator.set_state(state.cpu())
            return
        except (RuntimeError, TypeError):
            if saved_device is not None:
                raise
    generator.manual_seed((seed + 1 + iteration) % 2**64)
    warnings.warn(RunWarning(f"the attack generator's state was saved on {saved_device or 'another device type'} "
                             f"and cannot be restored on {generator.device.type}; reseeded, so the attacks' random "
                             "starts differ from an uninterrupted run's"))


def restore_latest(run: "Run") -> tuple[Path, int, EpochProgress] | None:
    found = load_latest_state(run.out / "state")
    if found is None:
        return None
    path, tensors, info = found
    epoch, progress = restore(run, tensors, info)
    return path, epoch, progress


def restore_file(run: "Run", path: Path) -> tuple[int, EpochProgress]:
    from nuat.train.state import read_state

    tensors, info = read_state(path)
    return restore(run, tensors, info)
