"""Pieces shared by the attacks: gradient of a loss w.r.t. the inputs, model-mode handling."""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Iterator

import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_steps(steps: int) -> None:
    """Raise ``ValueError`` unless ``steps >= 1``: zero steps would divide by zero in the default
    step sizes (eps / steps) or silently return the (random) start as an "attack"."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")


def check_loss(attack: str, loss: str, losses: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless ``loss`` is one of ``losses`` (an attack's objective names)."""
    if loss not in losses:
        raise ValueError(f"unknown {attack} loss {loss!r}; choose one of: {', '.join(losses)}")


def check_batch(inputs: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """Check an attack's arguments from their metadata alone (no host sync) and return the labels
    as int64 (B,); raise ``ValueError`` naming the bad value otherwise.

    Without it, int32 labels fail deep in ``cross_entropy`` (and AutoAttack's index_put), (B, 1)
    labels broadcast against (B,) predictions, uint8 images fail in ``torch.rand``, a string eps
    fails in an arithmetic op, and a negative eps silently returns points |eps| away from the
    inputs (the projection's min and max swap). Integer labels of any width are accepted and
    widened. That pixels lie in [0, 1] is not checked: it would cost a host sync per call.
    """
    if not isinstance(inputs, torch.Tensor) or not inputs.dtype.is_floating_point:
        what = inputs.dtype if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be a floating-point tensor of images in [0, 1], got {what} "
                         "(uint8 images: x.float() / 255)")
    if not isinstance(labels, torch.Tensor) or labels.dtype == torch.bool or labels.dtype.is_floating_point \
            or labels.dtype.is_complex:
        what = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be an integer tensor of class indices (int64 preferred), got {what}")
    if inputs.dim() < 1 or tuple(labels.shape) != (inputs.shape[0],):
        raise ValueError(f"labels must have shape (B,) = ({inputs.shape[0] if inputs.dim() else '?'},) for inputs "
                         f"of shape {tuple(inputs.shape)}, got {tuple(labels.shape)}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise ValueError(f"eps must be a number in pixels of [0, 1] images, got {type(eps).__name__} {eps!r} "
                         "(a string like '8/255': nuat.projections.parse_eps)")
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0 (pixels of [0, 1] images), got {eps!r}")
    if labels.is_inference():  # made under torch.inference_mode(): autograd may not save it (the loss)
        labels = labels.clone()
    return labels if labels.dtype == torch.int64 else labels.long()


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Parameters of ``model`` that require gradients stop requiring them inside the block.

    An attack needs only the input gradient. Eager autograd skips weight gradients nobody asked
    for anyway, but a ``torch.compile``-d model runs one fixed backward graph that computes every
    gradient its inputs require: with the parameters frozen it compiles (once) an input-only one.
    Graphs already built (e.g. the clean pass a training step reuses) keep their weight gradients.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def is_compiled(model: nn.Module) -> bool:
    """Whether ``model`` runs through ``torch.compile``: the wrapper ``torch.compile(model)``
    returns, or a module compiled in place with ``model.compile()``."""
    return hasattr(model, "_orig_mod") or getattr(model, "_compiled_call_impl", None) is not None


def input_gradient(model: nn.Module, x: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Gradient of ``objective(model(x))`` (a scalar) w.r.t. ``x``; parameters get no gradient.

    Returns a tensor shaped like ``x``. Uses ``torch.autograd.grad`` for ``x`` alone, so parameter
    ``.grad`` fields are never touched and no weight gradient is computed (attacks can run inside a
    training step): eager autograd prunes the gradients nobody asked for, and a compiled model runs
    with its parameters frozen (:func:`frozen_parameters`). An eager model keeps them trainable:
    frozen, they would miss autocast's cache of their bf16 copies, and every attack forward under
    ``--amp bf16`` would cast each weight again (10% of PGD-AT's ATen calls on ResNet-18,
    docs/speed.md). The forward pass follows the caller's autocast setting (the fast path's bf16);
    the backward runs with autocast off, so the losses' own backward formulas (e.g. the nuclear
    norm's) stay in float32.
    """
    # a tensor made under torch.inference_mode() cannot require grad: a normal copy of it can
    x = (x.clone() if x.is_inference() else x.detach()).requires_grad_(True)
    freeze = frozen_parameters(model) if is_compiled(model) else contextlib.nullcontext()
    with torch.enable_grad(), freeze:
        loss = objective(model(x))
        with torch.autocast(x.device.type, enabled=False):
            (grad,) = torch.autograd.grad(loss, x)
    return grad


@contextlib.contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put models in eval mode (BatchNorm running statistics) and restore their modes afterwards."""
    modes = [m.training for m in models]
    try:
        for m in models:
            m.eval()
        yield
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)


def sign_step(x_adv: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
    """One ascent step along ``sign(grad)`` (L-infinity steepest ascent)."""
    return x_adv.detach() + step_size * torch.sign(grad)


def where_examples(mask: torch.Tensor, chosen: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Per example: ``chosen[i]`` where ``mask[i]`` (a (B,) bool tensor), else ``other[i]``.

    Used inside attack loops instead of ``other[mask] = chosen[mask]``: a boolean index needs the
    mask's count on the host, one synchronisation per step on a GPU; ``torch.where`` needs none."""
    return torch.where(mask.view(-1, *([1] * (chosen.dim() - 1))), chosen, other)
