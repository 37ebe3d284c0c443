"""AWP, Adversarial Weight Perturbation (Wu, Xia & Wang, "Adversarial Weight Perturbation Helps
Robust Generalization", NeurIPS 2020, Sec. 4 and Algorithm 1), on top of PGD-AT (AT-AWP) or
TRADES (TRADES-AWP).

Per iteration:
  1. the base method's adversarial batch X~, on the unperturbed weights;
  2. one ascent step on the weights: on a proxy copy of the model (train mode, so its BatchNorm
     updates are thrown away) take the gradient g_l of the base method's training loss for every
     weight matrix / kernel w_l (biases and BatchNorm scales are not perturbed) and set
     ``v_l = gamma * ||w_l|| * g_l / ||g_l||`` (layer-wise size relative to the weight norm; the
     published proxy optimiser's learning rate cancels in this normalisation);
  3. ``w_l += v_l``; the base training loss at the perturbed weights is returned to the loop, which
     backpropagates and takes the optimiser step there;
  4. :meth:`after_step` subtracts ``v_l`` again, so the update computed at ``w + v`` lands on ``w``.

gamma = 5e-3 and one weight-perturbation step (K2 = 1) are the defaults here for both bases (the
authors' AT-AWP script is reported to default to 1e-2 for PreAct ResNet-18; ``--awp-gamma``).
The authors' TRADES-AWP script (csdongxian/AWP, ``trades_AWP/train_trades_cifar.py``) counts its
200 epochs from 1 and perturbs the weights when ``epoch >= awp_warmup`` with ``awp_warmup = 10``:
9 warm-up epochs, AWP from the 10th. Here ``warmup_fraction`` is that ``awp_warmup`` as a fraction
of the run (0.05 = 10/200 for ``trades-awp``, 0 for ``awp`` as in the AT-AWP script); see
:func:`first_awp_epoch`.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from nuat.methods.base import Method, MethodDefaults, StepContext, StepOutput
from nuat.methods.pgd_at import PGDAT
from nuat.methods.trades import TRADES

DEFAULTS = MethodDefaults()
BASES = {"pgd-at": PGDAT, "trades": TRADES}
#: guards the division for an all-zero layer gradient (the layer is then left unperturbed)
_TINY = 1e-20


def first_awp_epoch(warmup_fraction: float, epochs: int) -> int:
    """The first epoch, counted from 1, trained with AWP in a run of ``epochs`` epochs.

    The authors' condition ``epoch >= awp_warmup`` (epochs counted from 1) with ``awp_warmup =
    warmup_fraction * epochs``: the smallest such epoch, at least 1. ``first_awp_epoch(0.05, 200)``
    is 10, as in their 200-epoch script (``warmup_fraction = 1`` leaves only the last epoch).
    """
    # round first: 0.05 * 60 is 3.0000000000000004 in floating point, which must give 3, not 4
    return max(1, math.ceil(round(warmup_fraction * epochs, 9)))


def perturbed_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters AWP perturbs: weights with more than one dimension (conv kernels, linear
    matrices), in ``named_parameters`` order."""
    return [(name, p) for name, p in model.named_parameters() if p.ndim > 1 and name.endswith("weight")]


class AWP(Method):
    """AWP. Hyperparameters: ``base`` ("pgd-at" or "trades"), ``gamma`` (relative size of the
    weight perturbation, default 5e-3), ``warmup_fraction`` (AWP starts in epoch
    :func:`first_awp_epoch` ``(warmup_fraction, E)``, counted from 1; the epochs before it train
    with the base method alone) and the base method's own hyperparameters."""

    def __init__(self, *, base: str = "pgd-at", gamma: float = 5e-3, warmup_fraction: float = 0.0,
                 **base_hparams: Any) -> None:
        super().__init__(base=base, gamma=gamma, warmup_fraction=warmup_fraction, **base_hparams)
        if base not in BASES:
            raise ValueError(f"AWP base must be one of {sorted(BASES)}, got {base!r}")
        if not 0 <= gamma < math.inf:  # nan and inf too: nan trains silently unperturbed, inf diverges
            raise ValueError(f"gamma must be a finite number >= 0, got {gamma}")
        if not 0.0 <= warmup_fraction <= 1.0:
            raise ValueError(f"warmup_fraction must lie in [0, 1], got {warmup_fraction}")
        self.base = BASES[base](**base_hparams)
        self.gamma = gamma
        self.warmup_fraction = warmup_fraction
        self._proxy: nn.Module | None = None
        self._applied: list[tuple[nn.Parameter, torch.Tensor]] = []

    def weight_perturbation(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                            ctx: StepContext) -> dict[str, torch.Tensor]:
        """``{parameter name: v_l}`` that increases the base training loss (step 2 above)."""
        if self._proxy is None:
            self._proxy = copy.deepcopy(model)
        proxy = self._proxy
        proxy.load_state_dict(model.state_dict())
        proxy.train()
        loss, _, _ = self.base.training_loss(proxy, x, x_adv, y, ctx)
        named = perturbed_weights(proxy)
        grads = torch.autograd.grad(loss, [p for _, p in named])
        weights = dict(model.named_parameters())
        out = {}
        with torch.no_grad():
            for (name, _), g in zip(named, grads):
                w = weights[name]
                out[name] = g * (self.gamma * w.norm() / (g.norm() + _TINY))
        return out

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> StepOutput:
        if self._applied:
            raise RuntimeError("AWP.loss called again before after_step restored the weights")
        x_adv = self.base.adversarial_batch(model, x, y, ctx)
        # ctx.epoch counts from 0, the authors' epochs (and first_awp_epoch) from 1
        active = ctx.epoch + 1 >= first_awp_epoch(self.warmup_fraction, ctx.epochs) and self.gamma > 0
        if active:
            perturbation = self.weight_perturbation(model, x, x_adv, y, ctx)
            weights = dict(model.named_parameters())
            with torch.no_grad():
                for name, v in perturbation.items():
                    weights[name].add_(v)
                    self._applied.append((weights[name], v))
        loss, sums, passes = self.base.training_loss(model, x, x_adv, y, ctx)
        # attack + the proxy's pass of the training loss (when active) + the training loss itself
        copies = 2 if active else 1
        total = tuple(a + copies * b for a, b in zip(self.base.attack_passes(), passes))
        return StepOutput(loss=loss, sums=sums, x_adv=x_adv, passes=total)  # type: ignore[arg-type]

    def after_step(self, model: nn.Module) -> None:
        """Remove the weight perturbation (step 4): ``w <- w - v`` after the optimiser step."""
        with torch.no_grad():
            for w, v in self._applied:
                w.sub_(v)
        self._applied = []
