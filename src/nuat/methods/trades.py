"""TRADES (Zhang et al., "Theoretically Principled Trade-off between Robustness and Accuracy",
ICML 2019, Algorithm 1 and Sec. 5).

Training loss: ``CE(f(X), Y) + beta * KL(softmax f(X) || softmax f(X~)) / M`` (KL summed over
classes and examples, divided by the batch size M), gradients through both forward passes.
The attack maximises the KL term alone, from ``X + 0.001 * N(0, I)``, with ``steps`` signed steps
of ``step_size``, each projected to the eps-ball and [0, 1]; its target ``softmax f(X)`` is
computed once, in eval mode, like the attack. Published CIFAR-10 defaults: beta = 6 (1/lambda),
10 steps of 0.007 at eps 0.031 (eps / 4.4; here eps / 4, i.e. 2/255 at 8/255, as in the AWP
authors' TRADES script); MNIST used beta = 1 and 40 steps of 0.01 at 0.3.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nuat.attacks.common import eval_mode
from nuat.methods.base import Method, MethodDefaults, StepContext, StepOutput, regularised_sums
from nuat.methods.common import check_train_attack_steps, signed_ascent

DEFAULTS = MethodDefaults()
Passes = tuple[int, int, int]


def trades_kl(logits_adv: torch.Tensor, logits_clean: torch.Tensor) -> torch.Tensor:
    """``sum_i KL(softmax(clean_i) || softmax(adv_i)) / M`` for logits (M, C): TRADES' robust term.

    Differentiable in both arguments (the training loss backpropagates through both)."""
    m = logits_adv.shape[0]
    log_p = F.log_softmax(logits_clean, dim=1)
    log_q = F.log_softmax(logits_adv, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum() / max(m, 1)


class TRADES(Method):
    """TRADES. Hyperparameters: ``beta`` (default 6), ``steps`` (default 10), ``step_size``
    (pixels; default eps / 4), ``init_std`` (std of the Gaussian start, default 0.001)."""

    def __init__(self, *, beta: float = 6.0, steps: int = 10, step_size: float | None = None,
                 init_std: float = 0.001) -> None:
        super().__init__(beta=beta, steps=steps, step_size=step_size, init_std=init_std)
        check_train_attack_steps("TRADES", steps)
        if not 0 <= beta < math.inf:  # nan and inf too: they make every loss non-finite
            raise ValueError(f"beta must be a finite number >= 0, got {beta}")
        self.beta = beta
        self.steps = steps
        self.step_size = step_size
        self.init_std = init_std

    def adversarial_batch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """Maximise ``KL(softmax f(X) || softmax f(X~))`` (Algorithm 1, lines 4-7)."""
        step = ctx.eps / 4 if self.step_size is None else self.step_size
        with eval_mode(model), torch.no_grad():
            target = model(x)
        noise = torch.randn(x.shape, generator=ctx.generator, device=x.device, dtype=x.dtype)
        start = x + self.init_std * noise
        # the sum (not the mean) as in the reference code; the sign step ignores the scale anyway
        objective = lambda z: trades_kl(z, target) * z.shape[0]  # noqa: E731
        return signed_ascent(model, start, x, objective, eps=ctx.eps, step_size=step, steps=self.steps)

    def attack_passes(self) -> Passes:
        return (1 + self.steps, self.steps, 0)

    def training_loss(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                      ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor], Passes]:
        """Algorithm 1, line 9: CE on the clean batch plus beta times the KL term, in train mode."""
        logits_clean = model(x)
        logits_adv = model(x_adv)
        ce = F.cross_entropy(logits_clean, y)
        kl = trades_kl(logits_adv, logits_clean)
        loss = ce + self.beta * kl
        sums = regularised_sums(logits_clean, logits_adv, y, ce=ce, reg=kl, loss=loss)
        return loss, sums, (2, 0, 2)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> StepOutput:
        x_adv = self.adversarial_batch(model, x, y, ctx)
        loss, sums, passes = self.training_loss(model, x, x_adv, y, ctx)
        total = tuple(a + b for a, b in zip(self.attack_passes(), passes))
        return StepOutput(loss=loss, sums=sums, x_adv=x_adv, passes=total)  # type: ignore[arg-type]
