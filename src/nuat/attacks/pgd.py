"""PGD (Madry et al., 2018): projected signed-gradient ascent from a uniform random start."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nuat.attacks.common import check_batch, check_loss, check_steps, sign_step, where_examples
from nuat.losses import margin_loss
from nuat.projections import project_linf, random_uniform_start

LOSSES = ("ce", "margin")


def _objective(loss: str, labels: torch.Tensor):
    check_loss("PGD", loss, LOSSES)
    if loss == "ce":
        return lambda z: F.cross_entropy(z, labels, reduction="sum")
    return lambda z: margin_loss(z, labels).sum()


def pgd_trace(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float,
    readout: Sequence[int] = (),
    loss: str = "ce",
    random_start: bool = True,
    generator: torch.Generator | None = None,
    readout_seconds: dict[int, float] | None = None,
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """One PGD run that also reads out robustness after given step counts.

    The published evaluation reads accuracy after 7, 20, 50, 100 and 500 steps of the same run.
    An example counts as broken at step n if any iterate up to step n fooled the model (each
    iterate is a valid adversarial example, so this is the attack's honest strength).

    Args:
        inputs: (B, C, H, W) in [0, 1]; labels: (B,) class indices (any integer dtype).
        eps: L-infinity radius; steps: total steps; step_size: per-step size (pixels).
        readout: step counts <= steps at which to record per-example robustness.
        loss: "ce" (cross-entropy) or "margin" (``max_{j != y} z_j - z_y``, Carlini & Wagner).
        random_start: start from uniform noise in the eps-ball (Madry et al.) instead of ``inputs``.
        generator: source of the random start, on the inputs' device (default: the global one).
        readout_seconds: if a dict is given, it is filled with the wall-clock seconds from the
            call's start to each readout step (what a run of that many steps costs).
    Returns:
        (x_adv, robust): x_adv (B, C, H, W) is a fooling iterate where one was found, else the
        last iterate; robust maps each readout step n to a (B,) bool tensor, True where the
        model was still correct at every iterate 0..n.
    Raises:
        ValueError: ``steps < 1``, a readout step outside [0, steps], or an unknown ``loss``.
    """
    check_steps(steps)
    labels = check_batch(inputs, labels, eps)
    beyond = sorted(int(n) for n in readout if not 0 <= int(n) <= steps)
    if beyond:  # they would be missing from the result, a KeyError far from the cause
        raise ValueError(f"readout steps must lie in [0, steps={steps}], got {beyond}")
    start = time.perf_counter()
    objective = _objective(loss, labels)
    x_adv = random_uniform_start(inputs, eps, generator) if random_start else inputs.detach().clone()
    wanted = {int(n) for n in readout}
    best = x_adv.detach().clone()
    robust = torch.ones(labels.shape[0], dtype=torch.bool, device=inputs.device)
    out: dict[int, torch.Tensor] = {}
    for step in range(steps + 1):
        with torch.enable_grad():
            z_in = x_adv.detach().requires_grad_(True)
            logits = model(z_in)
            fooled = logits.argmax(1) != labels
            grad = None
            if step < steps:
                (grad,) = torch.autograd.grad(objective(logits), z_in)
        best = where_examples(fooled & robust, x_adv.detach(), best)
        robust &= ~fooled
        if step in wanted:
            out[step] = robust.clone()
            if readout_seconds is not None:
                readout_seconds[step] = time.perf_counter() - start
        if grad is None:
            break
        x_adv = project_linf(sign_step(x_adv, grad, step_size), inputs, eps)
    best = where_examples(robust, x_adv.detach(), best)
    return best.detach(), out


def pgd(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float,
    steps: int = 20,
    step_size: float | None = None,
    restarts: int = 1,
    loss: str = "ce",
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Untargeted L-infinity PGD with restarts; returns the strongest adversarial images found.

    Runs the model in the mode it is in (call ``model.eval()`` first for an evaluation).

    Args:
        inputs: (B, C, H, W) in [0, 1]; labels: (B,) class indices (any integer dtype).
        eps: radius in pixels; steps: steps per restart; step_size: defaults to
            ``2.5 * eps / steps`` (Madry et al.); restarts: independent random starts, an example
            keeps the first restart that fools the model; loss: "ce" or "margin".
        random_start: start each restart from uniform noise in the eps-ball (else from ``inputs``).
        generator: source of the random starts, on the inputs' device (default: the global one).
    Returns:
        (B, C, H, W) adversarial images in the eps-ball and [0, 1]: for each example the first
        fooling iterate where one was found, else the last iterate of the last restart.
    Raises:
        ValueError: ``steps < 1``, ``restarts < 1`` or an unknown ``loss``.
    """
    check_steps(steps)
    labels = check_batch(inputs, labels, eps)
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    check_loss("PGD", loss, LOSSES)  # before any model pass, also on a batch with nothing to attack
    size = 2.5 * eps / steps if step_size is None else step_size
    result = inputs.detach().clone()
    remaining = torch.ones(labels.shape[0], dtype=torch.bool, device=inputs.device)
    for _ in range(restarts):
        idx = remaining.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        x_adv, robust = pgd_trace(
            model, inputs[idx], labels[idx], eps=eps, steps=steps, step_size=size,
            readout=(steps,), loss=loss, random_start=random_start, generator=generator,
        )
        result[idx] = x_adv
        remaining[idx[~robust[steps]]] = False
    return result
