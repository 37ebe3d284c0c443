"""What ``nuat eval`` and ``nuat sanity`` evaluate: a run directory, a nuat checkpoint, or a plain
state dict of a registered architecture (``--model``), always loaded without unpickling."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nuat.checkpoints import file_sha256, load_model, load_state_dict_file, read_metadata
from nuat.errors import CheckpointError, UsageError

RUN_CHECKPOINTS = ("best", "best-ema")


@dataclass
class EvalTarget:
    """One model to evaluate.

    name: "best", "best-ema" or the file's stem; path: the file; sha256: its hash;
    metadata: the nuat checkpoint metadata ({} for a plain state dict); model: float32, eval
    mode, parameters frozen (attacks take gradients w.r.t. the inputs only).
    """

    name: str
    path: Path
    sha256: str
    model: nn.Module
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        spec = getattr(self.model, "model_spec", None) or self.metadata.get("model_spec") or {}
        return str(spec.get("name", type(self.model).__name__))


def prepare(model: nn.Module, device: torch.device) -> nn.Module:
    """float32, eval mode, on ``device``, no parameter gradients."""
    model = model.to(device=device, dtype=torch.float32).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _plain(path: Path, model_name: str, dataset: str, mean: list[float] | None, std: list[float] | None,
           device: torch.device) -> EvalTarget:
    from nuat.data import get_dataset_spec
    from nuat.models import build_model

    spec = get_dataset_spec(dataset)
    if spec.num_classes is None or spec.image_shape is None:
        raise UsageError(f"data set {dataset!r} takes its classes from the data; plain state dicts need a fixed one")
    if (mean is None) != (std is None):
        raise UsageError("--mean and --std go together")
    norm = None if mean is None else (mean, std)
    c, h, _ = spec.image_shape
    model = build_model(model_name, num_classes=spec.num_classes, in_channels=c, image_size=h, normalization=norm)
    state = load_state_dict_file(path)
    target = model
    if norm is not None and not any(k.startswith(("net.", "normalize.")) for k in state):
        target = model.net  # weights of the bare network; the normalisation comes from --mean/--std
    try:
        target.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit {model_name} for {dataset}: {str(exc).splitlines()[0]}") from None
    return EvalTarget(path.stem, path, file_sha256(path), prepare(model, device))


def _nuat(path: Path, name: str, device: torch.device) -> EvalTarget:
    meta = read_metadata(path)
    return EvalTarget(name, path, file_sha256(path), prepare(load_model(path, device=device), device), meta)


def resolve_targets(
    path: str | Path,
    *,
    model: str | None = None,
    dataset: str | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    device: torch.device | str = "cpu",
) -> list[EvalTarget]:
    """The models behind ``path``.

    A run directory gives ``best.safetensors`` and, when present, ``best-ema.safetensors``; a
    nuat checkpoint gives itself; with ``model`` (and ``dataset``) a plain state dict
    (safetensors, or ``.pt``/``.pth`` read with ``weights_only=True``) is loaded into that
    registered architecture. Raises :class:`UsageError` for anything else.
    """
    path, device = Path(path), torch.device(device)
    if path.is_dir():
        if model is not None:
            raise UsageError("--model is for a plain state-dict file, not a run directory")
        found = [(n, path / f"{n}.safetensors") for n in RUN_CHECKPOINTS if (path / f"{n}.safetensors").is_file()]
        if not found or found[0][0] != "best":
            present = ", ".join(sorted(p.name for p in path.glob("*.safetensors"))) or "no .safetensors files"
            raise UsageError(f"{path} is not a finished run directory: no best.safetensors ({present})")
        return [_nuat(p, n, device) for n, p in found]
    if not path.is_file():
        raise UsageError(f"{path} does not exist")
    if model is None:
        return [_nuat(path, path.stem, device)]
    if dataset is None:
        raise UsageError("--model needs --dataset (the number of classes and image size come from it)")
    try:
        read_metadata(path)
    except CheckpointError:
        return [_plain(path, model, dataset, mean, std, device)]
    raise UsageError(f"{path} is a nuat checkpoint that describes its own model; drop --model")
