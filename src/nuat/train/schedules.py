"""Schedules as plain functions of training progress.

Every schedule is stated as a fraction of the run, so a run of any length keeps the
published shape (the published 100-epoch lambda ramp over E - 10 epochs becomes a ramp
over 90% of the run, and does not break a 5-epoch run).
"""

from __future__ import annotations

__all__ = ["lambda_ramp", "cyclic_step_lr", "step_lr", "reached"]


def reached(epoch: int, epochs: int, fraction: float) -> bool:
    """Whether ``epoch`` (from 0) is at or past ``fraction`` of a run of ``epochs`` epochs (the
    first epoch >= fraction * epochs; a float-rounding margin keeps 0.71 * 100 at epoch 71)."""
    return epoch >= fraction * epochs - 1e-9


def lambda_ramp(epoch: int, epochs: int, *, lam_max: float, ramp_fraction: float,
                boost: tuple[float, float] | list[float] | None = None) -> float:
    """NuAT's lambda for a whole epoch (reference details: linear growth from 0).

    Published NuAT (E = 100): +lam_max/(E - 10) after each epoch for the first E - 10 epochs,
    i.e. ``ramp_fraction = 0.9``; NuAT-WA: +lam_max/E every epoch, ``ramp_fraction = 1.0``.
    ``epoch`` counts from 0; epoch 0 trains with lambda = 0. ``boost = (fraction, factor)``
    multiplies lambda by ``factor`` from epoch ``fraction * epochs`` on (GAT's published script:
    lambda x 4 after epoch 85 of 100, i.e. ``(0.86, 4.0)``).

    Raises ``ValueError`` unless ``epochs > 0``.

    >>> lambda_ramp(45, 100, lam_max=4.5, ramp_fraction=0.9)
    2.25
    >>> lambda_ramp(86, 100, lam_max=10.0, ramp_fraction=0.0, boost=(0.86, 4.0))
    40.0
    """
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    ramp_epochs = ramp_fraction * epochs
    lam = float(lam_max) if ramp_epochs <= 0 else float(lam_max) * min(epoch / ramp_epochs, 1.0)
    if boost is not None and reached(epoch, epochs, boost[0]):
        lam *= float(boost[1])
    return lam


def cyclic_step_lr(
    progress: float,
    *,
    lr_max: float,
    up_fraction: float,
    down_fraction: float,
    decay: float = 10.0,
) -> float:
    """The paper's "cyclic-step" learning rate at ``progress`` in [0, 1] of the run (per iteration).

    A triangle from 0 up to ``lr_max`` over the first ``up_fraction`` of the run and back down to
    0 over the next ``down_fraction``; the rest of the run (if any) is a step schedule: ``lr_max /
    decay`` for its first half, ``lr_max / decay**2`` for its second half. Published values as
    fractions: NuAT ResNet-18 (E=100) up 0.4, down 0.5; NuAT-WA up 0.25, down 0.75;
    NuAT2 WRN-34-10 (E=55) up 20/55, down 15/55.

    The published text does not say where the step tail starts; this reading (tail at
    lr_max/decay, one more decay halfway) is ours and documented in docs/methods.md.
    """
    t = min(max(progress, 0.0), 1.0)
    up_end = up_fraction
    down_end = up_fraction + down_fraction
    if t < up_end:
        return lr_max * t / up_end
    if t < down_end:
        return lr_max * (1.0 - (t - up_end) / down_fraction)
    tail = 1.0 - down_end
    if tail <= 1e-12:
        return 0.0
    return lr_max / decay if (t - down_end) < tail / 2 else lr_max / decay**2


def step_lr(epoch: int, epochs: int, *, lr_max: float, drops: tuple[float, ...] | list[float],
            factor: float = 10.0) -> float:
    """A piecewise-constant learning rate for a whole epoch: ``lr_max``, divided by ``factor`` at
    the first epoch >= ``d * epochs`` for each fraction ``d`` in ``drops`` (``epoch`` counts from 0).

    GAT's published CIFAR-10 script (100 epochs): LR 0.1, divided by 10 after epochs 70 and 85,
    i.e. ``drops = (0.71, 0.86)`` (the same epoch as its lambda boost, see ``lambda_ramp``).
    Raises ``ValueError`` unless ``epochs > 0``.

    >>> step_lr(70, 100, lr_max=0.1, drops=(0.71, 0.86))
    0.1
    >>> round(step_lr(86, 100, lr_max=0.1, drops=(0.71, 0.86)), 6)
    0.001
    """
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    passed = sum(1 for d in drops if reached(epoch, epochs, d))
    return float(lr_max) / float(factor) ** passed
