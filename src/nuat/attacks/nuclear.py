"""The NuAT attack (paper Sec. 5.1, Algorithm 1 lines 4-7, and the two-step variant of Sec. 5.3).

Maximises Eq. 1, ``CE(f(X + D), Y) + lam * ||f(X + D) - f(X)||_* / M``, from Bernoulli noise of
magnitude alpha, with signed steps of size eps, each followed by projection to the eps-ball
and the [0, 1] box. Usable in training (the caller provides the reference logits f(X)) and as an
evaluation attack (reference logits computed here).
"""

from __future__ import annotations

import torch
from torch import nn

from nuat.attacks.common import check_batch, check_steps, eval_mode, input_gradient, sign_step
from nuat.losses import nuat_objective
from nuat.projections import bernoulli_start, project_linf


def nuat_step(
    model: nn.Module,
    x_adv: torch.Tensor,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    lam: float,
    reference_logits: torch.Tensor | None,
    group_size: int | None = None,
) -> torch.Tensor:
    """One signed-gradient step on Eq. 1 (``lam = 0``: cross-entropy only), then projection.
    ``group_size``: the nuclear term's row groups (:func:`nuat.losses.nuclear_norm`)."""
    if lam != 0.0 and reference_logits is None:
        raise ValueError("reference_logits are needed when lam != 0")
    ref = None if reference_logits is None else reference_logits.detach()
    # at lam = 0 the objective is the cross-entropy alone (the reference is not read)
    grad = input_gradient(model, x_adv, lambda z: nuat_objective(z, labels, ref, lam, group_size=group_size))
    return project_linf(sign_step(x_adv, grad, step_size), inputs, eps).detach()


def nuclear(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float,
    lam: float = 4.0,
    steps: int = 1,
    alpha: float | None = None,
    step_size: float | None = None,
    reference_logits: torch.Tensor | None = None,
    first_step_model: nn.Module | None = None,
    first_step_reference: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    group_size: int | None = None,
) -> torch.Tensor:
    """The NuAT attack: Bernoulli start, then ``steps`` signed steps (1 = NuAT, 2 = NuAT2).

    Step 1 maximises Eq. 1 with weight ``lam``; later steps maximise CE only (Sec. 5.3). Runs the
    model(s) in eval mode (reference details) and restores their modes.

    Args:
        inputs: (M, C, H, W) clean images in [0, 1]; labels: (M,) class indices (any integer dtype).
        eps: L-infinity radius in pixels; step_size defaults to eps (published); alpha (Bernoulli
            noise magnitude) defaults to eps / 2 (published 4/255 at eps 8/255).
        lam: weight of the nuclear term in step 1 (0 gives R-FGSM-style CE steps; NuAT's training
            uses 0 on every other minibatch, Sec. 5.1).
        steps: 1 (NuAT) or 2 (NuAT2); more steps are further CE steps.
        reference_logits: f(X) of Eq. 1, (M, classes); training passes the detached train-mode
            clean logits. If None, computed here in eval mode.
        first_step_model, first_step_reference: NuAT2-WA takes step 1 on the averaged model with
            that model's own clean logits as reference (``reference_logits`` is then not read).
        generator: source of the Bernoulli start, on the inputs' device (default: the global one).
        group_size: row groups of the nuclear term (:func:`nuat.losses.nuclear_norm`).
    Returns:
        (M, C, H, W) adversarial images in the eps-ball and [0, 1], detached.
    Raises:
        ValueError: ``steps < 1``.
    """
    check_steps(steps)
    labels = check_batch(inputs, labels, eps)
    alpha = eps / 2 if alpha is None else alpha
    step_size = eps if step_size is None else step_size
    first = model if first_step_model is None else first_step_model
    with eval_mode(model, first):
        ref1 = first_step_reference if first_step_model is not None else reference_logits
        if lam != 0.0 and ref1 is None:
            with torch.no_grad():
                ref1 = first(inputs)
        x_adv = bernoulli_start(inputs, alpha, generator)
        x_adv = nuat_step(first, x_adv, inputs, labels, eps=eps, step_size=step_size, lam=lam,
                          reference_logits=ref1, group_size=group_size)
        for _ in range(steps - 1):
            x_adv = nuat_step(model, x_adv, inputs, labels, eps=eps, step_size=step_size, lam=0.0,
                              reference_logits=None)
    return x_adv
