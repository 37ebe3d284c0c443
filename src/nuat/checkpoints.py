"""Model checkpoints in safetensors, with metadata that describes the model completely.

Loading never unpickles: safetensors holds only tensors, and the metadata is JSON. A foreign
``.pt``/``.pth`` state dict is read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from nuat.errors import CheckpointError, UsageError

FORMAT = "nuat-model/1"


def _file_mode() -> int:
    """The mode a plainly created file gets (0o666 less the umask); mkstemp's own is 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Write a file atomically: ``write(tmp_path)`` into a temp file ``.<name>.*.tmp`` in the same
    folder, fsync, rename; the file gets the usual permissions (readable by others where the umask
    allows), not the temp file's owner-only ones."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` (UTF-8): a reader sees the old file or the whole new one."""
    atomic_write_bytes(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def save_model(path: str | Path, model: nn.Module, **info: Any) -> None:
    """Save ``model``'s state dict with metadata: its ``model_spec`` plus ``info`` (data set, eps,
    threat model, method, epoch, validation score, ...). Every value is stored as JSON text."""
    spec = getattr(model, "model_spec", None)
    if spec is None:
        raise ValueError("model has no model_spec; build it with nuat.models.build_model")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "model_spec": json.dumps(spec)}
    metadata.update({k: json.dumps(v) for k, v in info.items()})
    atomic_write_bytes(Path(path), lambda tmp: save_file(state, tmp, metadata=metadata))


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded metadata of a nuat safetensors checkpoint."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # safetensors raises its own error types on malformed headers
        if path.is_dir():
            inside = sorted(p.name for p in path.glob("*.safetensors"))
            which = f"it holds {', '.join(inside[:4])}" + (", ..." if len(inside) > 4 else "") if inside else \
                "it holds no .safetensors file"
            raise CheckpointError(f"checkpoint {path} is a folder; give a checkpoint file in it ({which})") from None
        hint = "" if path.suffix == ".safetensors" else ("; a plain state dict (.pt, .pth) needs its architecture "
                                                         "and data set (nuat eval and nuat sanity: --model and --dataset)")
        raise CheckpointError(f"checkpoint {path} is not a readable safetensors file ({exc}){hint}") from None
    if raw.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} has no nuat metadata (format {raw.get('format')!r}); a plain "
                              "state dict needs its architecture: nuat eval --model, or in Python build the model "
                              "and model.load_state_dict(nuat.checkpoints.load_state_dict_file(path))")
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "format":
            meta[key] = value
            continue
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"checkpoint {path} has malformed metadata: {key!r} is not JSON "
                                  f"({exc.msg} at character {exc.pos})") from None
    if "model_spec" not in meta:
        raise CheckpointError(f"checkpoint {path} has nuat metadata without a model_spec, so its architecture is "
                              "unknown; give --model to load it as a plain state dict")
    if not isinstance(meta["model_spec"], dict):
        raise CheckpointError(f"checkpoint {path} has a malformed model_spec: a JSON "
                              f"{type(meta['model_spec']).__name__}, expected an object")
    return meta


def describe_mismatch(model: nn.Module, state: dict[str, torch.Tensor], error: Exception | None = None) -> str:
    """One line saying why ``state`` does not load into ``model``: the first missing key, the first
    unexpected key and the first shape mismatch (with counts); else the first detail of ``error``."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s), first {missing[0]!r}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s), first {unexpected[0]!r}")
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} shape mismatch(es), first {k!r}: {tuple(state[k].shape)} in the checkpoint, "
                     f"{tuple(expected[k].shape)} in the model")
    if parts:
        return "; ".join(parts)
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    detail = lines[1] if len(lines) > 1 else (lines[0] if lines else "unknown reason")
    return " ".join(detail.split())


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, or of a ``.pt``/``.pth`` file read with ``weights_only=True``.

    Anything that needs unpickling beyond plain tensors is refused and never executed. The key
    prefixes of a wrapped model's state dict (``module.``: DataParallel / DistributedDataParallel;
    ``_orig_mod.``: ``torch.compile``) are taken off where every key has them, in either format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))  # parses a JSON header and raw tensors: nothing to execute
    except Exception as exc:
        if path.suffix == ".safetensors":
            raise CheckpointError(f"checkpoint {path} is not a readable safetensors file ({exc})") from None
    else:
        return _unwrapped(tensors)
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error line below says it all
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:
        raise CheckpointError(f"refusing {path}: it is neither safetensors nor a plain state dict that "
                              "torch.load(weights_only=True) can read; nothing in it was executed") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        # training scripts often save {"model": state_dict, "epoch": ..., "optimizer": ...}: name the
        # entries that are state dicts rather than guess which one is meant
        nested = [k for k, v in obj.items() if isinstance(v, dict) and v
                  and all(isinstance(t, torch.Tensor) for t in v.values())] if isinstance(obj, dict) else []
        hint = (f"; its state dict(s) sit under {', '.join(repr(k) for k in nested[:4])}: save that entry alone "
                f"(torch.save(checkpoint[{nested[0]!r}], path))") if nested else ""
        raise CheckpointError(f"refusing {path}: expected a dict of tensors (a state dict), or one under "
                              f"'state_dict'{hint}")
    return _unwrapped(obj)


#: key prefixes of wrapped models' state dicts: DataParallel / DDP, torch.compile
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _unwrapped(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` without the wrapper prefixes that all its keys share (nested ones too)."""
    stripped = True
    while stripped and state:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                stripped = True
    return state


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a nuat checkpoint alone (architecture and normalisation from its
    metadata), load its weights, and return it in eval mode on ``device``."""
    from nuat.models import build_from_spec

    meta = read_metadata(path)
    try:
        model = build_from_spec(meta["model_spec"])
    except UsageError as exc:
        raise CheckpointError(f"checkpoint {path} has a model_spec that cannot be built: {exc}") from None
    state = load_state_dict_file(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        detail = describe_mismatch(model, state, exc)
        raise CheckpointError(f"checkpoint {path} does not match its own model spec "
                              f"({meta['model_spec'].get('name')!r}): {detail}") from None
    model.checkpoint_metadata = meta
    return model.to(device).eval()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex), read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
