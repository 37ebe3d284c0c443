"""What ``nuat eval`` and ``nuat sanity`` evaluate: a run directory, a nuat checkpoint, or a plain
state dict of a registered architecture (``--model``), always loaded without unpickling."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nuat.checkpoints import describe_mismatch, file_sha256, load_model, load_state_dict_file, read_metadata
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
    def model_spec(self) -> dict[str, Any]:
        """The architecture the model was built from (``build_model`` arguments); {} when unknown."""
        spec = getattr(self.model, "model_spec", None) or self.metadata.get("model_spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def model_name(self) -> str:
        return str(self.model_spec.get("name", type(self.model).__name__))

    @property
    def num_classes(self) -> int | None:
        """The model's number of classes, from its ``model_spec``; None when unknown."""
        classes = self.model_spec.get("num_classes")
        return classes if isinstance(classes, int) and not isinstance(classes, bool) else None


def spec_image_size(spec: Any) -> int | None:
    """``image_size`` of a ``model_spec`` dict (the side S of the (C, S, S) inputs the model was
    built for, in pixels); None when absent or not a positive integer."""
    size = spec.get("image_size") if isinstance(spec, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else None


def target_image_size(target: EvalTarget) -> int | None:
    """The input side the target's model was built (and trained) for, from its ``model_spec``;
    None for a model without one (e.g. a wrapped test model)."""
    return spec_image_size(target.model_spec)


def load_test_data(dataset: str, data_dir: str | Path | None, targets: list[EvalTarget], *,
                   progress: bool = True) -> Any:
    """The test split of ``dataset`` at the input size of ``targets``' models.

    A folder data set (imagefolder) otherwise takes its size from the split's first image, which
    need not be the size the model was trained at (nor the train split's first image). Raises
    :class:`UsageError` if the targets were built for different sizes (they share one data set).
    """
    from nuat.data import load_dataset

    sizes = sorted({s for s in map(target_image_size, targets) if s is not None})
    if len(sizes) > 1:
        raise UsageError(f"the models to evaluate take different image sizes ({', '.join(map(str, sizes))}); "
                         "evaluate them one at a time")
    return load_dataset(dataset, "test", data_dir, image_size=sizes[0] if sizes else None, progress=progress)


def check_image_size(data: Any, target: EvalTarget) -> None:
    """Raise :class:`UsageError` if ``data``'s (C, H, W) images are not the S x S the target's
    model was built for (S from its ``model_spec``; nothing to check without one)."""
    size = target_image_size(target)
    _, h, w = data.image_shape
    if size is not None and (h, w) != (size, size):
        raise UsageError(f"{target.path} takes {size}x{size} images, the test images are {h}x{w} "
                         "(load them with nuat.eval.targets.load_test_data, at the model's size)")


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
        raise CheckpointError(f"{path} does not fit {model_name} for {dataset}: {describe_mismatch(target, state, exc)}") from None
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
    if not str(path).strip():  # Path("") would be ".", the current folder
        raise UsageError("the checkpoint or run directory is empty; give a path")
    path, device = Path(path), torch.device(device)
    if model is None and (mean is not None or std is not None):  # a nuat checkpoint has its own; not ignored
        raise UsageError("--mean/--std apply to a plain state dict loaded with --model; a nuat run or "
                         "checkpoint carries its own normalisation")
    if path.is_dir():
        if model is not None:
            raise UsageError("--model is for a plain state-dict file, not a run directory")
        found = [(n, path / f"{n}.safetensors") for n in RUN_CHECKPOINTS if (path / f"{n}.safetensors").is_file()]
        if not found or found[0][0] != "best":
            present = ", ".join(sorted(p.name for p in path.glob("*.safetensors"))) or "no .safetensors files"
            raise UsageError(f"{path} is not a finished run directory: no best.safetensors ({present})")
        return [_nuat(p, n, device) for n, p in found]
    if not path.is_file():
        raise UsageError(f"{path} is not a regular file" if path.exists() else f"{path} does not exist")
    if model is None:
        return [_nuat(path, path.stem, device)]
    if dataset is None:
        raise UsageError("--model needs --dataset (the number of classes and image size come from it)")
    try:
        read_metadata(path)
    except CheckpointError:
        return [_plain(path, model, dataset, mean, std, device)]
    raise UsageError(f"{path} is a nuat checkpoint that describes its own model; drop --model")
