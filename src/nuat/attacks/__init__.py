"""Attacks under the L-infinity threat model: plain functions ``attack(model, inputs, labels, *, eps, ...)``.

Inputs are (B, C, H, W) images in [0, 1] on any device; outputs are adversarial images of the
same shape inside the eps-ball and the [0, 1] box. None of them changes the model's mode:
evaluation code puts the model in eval mode (the NuAT training attack does so itself).
"""

from nuat.attacks.autoattack import autoattack, run_autoattack
from nuat.attacks.common import eval_mode, input_gradient
from nuat.attacks.fgsm import fgsm
from nuat.attacks.gama import gama_pgd
from nuat.attacks.ifgsm import ifgsm
from nuat.attacks.nuclear import nuclear
from nuat.attacks.pgd import pgd, pgd_trace
from nuat.attacks.square import square
from nuat.attacks.targeted import targeted_pgd

__all__ = [
    "autoattack", "eval_mode", "fgsm", "gama_pgd", "ifgsm", "input_gradient", "nuclear", "pgd", "pgd_trace",
    "run_autoattack", "square", "targeted_pgd",
]
