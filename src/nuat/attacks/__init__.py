"""Attacks under the L-infinity threat model: plain functions ``attack(model, inputs, labels, *, eps, ...)``.

Inputs are (B, C, H, W) floating-point images in [0, 1] on any device, labels (B,) class indices
of any integer dtype (int32, uint8: widened to int64); eps (a number >= 0) and step sizes are in
pixel units of that range; outputs are adversarial images of the inputs' shape and dtype inside
the eps-ball and the [0, 1] box (float32 and float64 inputs: to within float32 rounding; in
bfloat16 or float16, ``x +- eps`` rounds and an output can lie one unit in the last place beyond
eps, which :func:`nuat.projections.check_linf` refuses: attack in float32). That inputs lie in
[0, 1] is not checked (a host sync per call): images in 0..255 come back clamped to [0, 1], far
outside their eps-ball, so scale them first.
The model must take the inputs' dtype (a float32 model refuses float64 inputs; pyautoattack
feeds float32, so a float64 model fails inside it).
None of them changes the model's mode: evaluation code puts the model in eval mode (the NuAT
training attack does so itself); a model left in train mode updates its BatchNorm statistics on
every attack pass. nuat's own attacks never touch parameter ``.grad`` fields (AutoAttack's FAB
calls ``backward()``: freeze the parameters, as ``nuat eval`` does, or zero them afterwards).

Randomness (the random starts) comes from ``generator``, a ``torch.Generator`` on the inputs'
device (None: the global one), so a seeded generator makes an attack reproducible; ``square``
and the AutoAttack functions take a ``seed`` instead and reseed the global generator with it
(they need the optional package ``pyautoattack``, the ``eval`` extra). ``steps < 1``, unknown
loss names, non-float inputs, non-integer or mis-shaped labels and a negative, non-finite or
non-numeric eps (``"8/255"``: :func:`nuat.projections.parse_eps`) raise ``ValueError`` before any
model pass.
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
