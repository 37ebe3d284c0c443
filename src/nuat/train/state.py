"""Full training state for exact resumption, written atomically.

One state file ``<run>/state/state-<iteration>.safetensors`` holds every tensor (model, weight
averages, optimiser buffers, epoch sums, data permutation, generator states); its metadata holds
everything else as JSON plus a SHA-256 of the tensor contents, so a truncated or corrupted newest
file is detected and the previous good one is used instead (with a warning).
"""

from __future__ import annotations

import hashlib
import json
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from nuat.checkpoints import atomic_write_bytes
from nuat.errors import RunWarning

FORMAT = "nuat-train-state/1"
#: the state of the last epoch end without a collapse warning (``<name>.safetensors``, never pruned)
HEALTHY_STATE = "healthy"
KEEP = 2


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of ``tensors`` (in sorted name order)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def rng_snapshot() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Global generators: torch CPU (and CUDA) as tensors; numpy and Python's as JSON."""
    tensors = {"rng/torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/torch_cuda_{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    py = random.getstate()
    info = {"numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
            "python": [py[0], list(py[1]), py[2]]}
    return tensors, info


def rng_restore(tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng/torch_cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng/torch_cuda_"))]
        if states:
            torch.cuda.set_rng_state_all(states)
    kind, keys, pos, has_gauss, gauss = info["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = info["python"]
    random.setstate((version, tuple(internal), gauss_next))


def save_state(folder: Path, iteration: int, tensors: dict[str, torch.Tensor], info: dict[str, Any], *,
               name: str | None = None) -> Path:
    """Write one state file atomically and keep only the newest ``KEEP`` of them.

    Numbered states of later iterations are deleted after the write: they belong to an abandoned
    attempt (an epoch rolled back after a collapse), and resuming picks the highest number. A kill
    between the write and the deletion resumes the abandoned attempt, which replays exactly (and
    rolls back again); deleting first could leave no numbered state at all.
    ``name`` writes a separately named file instead (e.g. the last healthy epoch end), never pruned.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cpu = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    metadata = {"format": FORMAT, "sha256": tensors_digest(cpu), "info": json.dumps(info)}
    path = folder / (f"{name}.safetensors" if name else f"state-{iteration:010d}.safetensors")
    atomic_write_bytes(path, lambda tmp: save_file(cpu, tmp, metadata=metadata))
    if name:
        return path
    discard_states_after(folder, iteration)
    for old in sorted(folder.glob("state-*.safetensors"))[:-KEEP]:
        old.unlink(missing_ok=True)
    return path


def state_iteration(path: Path) -> int | None:
    """The iteration in a ``state-<iteration>.safetensors`` name; None for other names."""
    digits = path.name[len("state-"):-len(".safetensors")]
    return int(digits) if path.name.startswith("state-") and digits.isdigit() else None


def discard_states_after(folder: Path, iteration: int) -> None:
    """Delete the numbered states of iterations after ``iteration``."""
    for path in folder.glob("state-*.safetensors"):
        later = state_iteration(path)
        if later is not None and later > iteration:
            path.unlink(missing_ok=True)


def read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a nuat training state (format {meta.get('format')!r})")
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    if tensors_digest(tensors) != meta.get("sha256"):
        raise ValueError("content hash does not match the one in its metadata")
    return tensors, json.loads(meta["info"])


def load_latest_state(folder: Path) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]] | None:
    """The newest state file that reads and verifies; broken newer ones are skipped with a warning."""
    for path in sorted(folder.glob("state-*.safetensors"), reverse=True):
        try:
            tensors, info = read_state(path)
        except Exception as exc:  # truncated header, bad JSON, hash mismatch...
            warnings.warn(f"training state {path} is unreadable ({exc}); falling back to the previous one",
                          RunWarning, stacklevel=2)
            continue
        return path, tensors, info
    return None


def pack_module_states(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{k}": v for k, v in state.items()}


def unpack_module_states(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    head = prefix + "/"
    return {k[len(head):]: v for k, v in tensors.items() if k.startswith(head)}


def optimizer_snapshot(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimiser state: per-parameter tensors (e.g. SGD momentum) + JSON param groups."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, pstate in sd["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{pid}/{key}"] = value
            else:
                scalars[f"{pid}/{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_restore(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim/"):
            _, pid, key = name.split("/", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in info["scalars"].items():
        pid, key = name.split("/", 1)
        state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
