"""AutoAttack (Croce & Hein, ICML 2020) through the authors' package ``pyautoattack``.

Two versions:

* ``"standard"``: the package's standard version (since Aug. 2020): APGD-CE (no restarts),
  APGD-T (9 target classes), FAB-T (9 target classes), Square (5000 queries).
* ``"v1"``: the original AutoAttack that the NuAT paper reports as "AA": APGD-CE and APGD-DLR
  (100 steps, 5 restarts on the points still robust), untargeted FAB (5 restarts), Square (5000
  queries), i.e. the package's ``version="custom"`` with these four attacks and its defaults.

The components run one after another on the examples still robust, exactly as
``AutoAttack.run_standard_evaluation`` does on one batch; calling the package once per component
is what lets us report the robust accuracy after each component and the package's own warnings
(its ``checks`` module logs them through ``logging``; they are collected, never hidden).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from nuat.attacks.common import check_batch

#: version -> components in the order the package runs them
VERSIONS: dict[str, tuple[str, ...]] = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "v1": ("apgd-ce", "apgd-dlr", "fab", "square"),
}
LOGGER_NAME = "auto-attack"  # the logger pyautoattack writes to


@dataclass
class AutoAttackResult:
    """What one AutoAttack run on a batch produced.

    Attributes:
        adversarial: (B, C, H, W) images; a fooling point where a component found one, else the
            clean image.
        robust_after: component -> (B,) bool, still robust after that component (cumulative;
            clean-misclassified examples are False throughout).
        seconds: component -> wall seconds it took.
        flags: the package's warnings (randomised or dynamic model, zero gradients, softmax
            outputs, Square beating the gradient attacks, ...), each once, in order.
    """

    adversarial: torch.Tensor
    robust_after: dict[str, torch.Tensor]
    seconds: dict[str, float]
    flags: list[str] = field(default_factory=list)


#: pyautoattack's flag messages end "See flags_doc.md for details"; the file is in the authors'
#: repository only
FLAGS_DOC = "flags_doc.md"
FLAGS_DOC_URL = "https://github.com/fra31/auto-attack/blob/master/flags_doc.md"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # the package points to its own flags_doc.md, which is not installed with it: name where it is
        message = record.getMessage().replace(FLAGS_DOC, FLAGS_DOC_URL)
        if message not in self.messages:
            self.messages.append(message)


@contextmanager
def collect_flags() -> Iterator[list[str]]:
    """Collect the warnings pyautoattack logs inside the block (not printed; returned instead)."""
    logger = logging.getLogger(LOGGER_NAME)
    handler, propagate = _Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


#: ``nuat eval`` attack families that run through ``pyautoattack`` (``nuat sanity``'s Square does too)
NEEDS_PYAUTOATTACK = ("aa", "aa-v1")


def require_pyautoattack(what: str) -> None:
    """Raise a one-line :class:`nuat.errors.UsageError` naming ``what`` and the install command when
    ``pyautoattack`` cannot be imported: it is an optional dependency (the ``eval`` extra), and
    without this check a default ``nuat eval`` would run its other attacks first and then stop with
    a traceback at AutoAttack."""
    from nuat.errors import UsageError

    try:
        import pyautoattack  # noqa: F401
    except ImportError:
        raise UsageError(f"{what} needs the package pyautoattack, which is not installed; "
                         "install it with: pip install 'nuat[eval]' (or pip install pyautoattack)") from None


def build_adversary(model: nn.Module, *, eps: float, version: str, seed: int, device: torch.device):
    """A ``pyautoattack.AutoAttack`` configured as ``version`` ("standard" or "v1")."""
    from pyautoattack import AutoAttack

    if version == "standard":
        return AutoAttack(model, eps=eps, norm="Linf", version="standard", seed=seed, device=device)
    if version == "v1":
        # the original settings are the package's constructor defaults for these attacks
        return AutoAttack(model, eps=eps, norm="Linf", version="custom", attacks=list(VERSIONS["v1"]),
                          seed=seed, device=device)
    raise ValueError(f"unknown AutoAttack version {version!r}; choose one of: {', '.join(VERSIONS)}")


def square_flag(accuracy_after: Mapping[str, float]) -> str | None:
    """The package's own check that Square (black-box) did not lower the accuracy left by the
    gradient attacks (``checks.check_square_sr``); its message, or None.

    ``accuracy_after`` holds "clean" and each component's cumulative robust accuracy."""
    from pyautoattack import checks

    with collect_flags() as messages:
        checks.check_square_sr(dict(accuracy_after), logger=logging.getLogger(LOGGER_NAME))
    return messages[0] if messages else None


def run_autoattack(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float,
    version: str = "standard",
    seed: int = 0,
    check_square: bool = True,
) -> AutoAttackResult:
    """Run AutoAttack on one batch with per-component read-outs.

    Args:
        inputs: (B, C, H, W) in [0, 1]; labels: (B,) class indices (any integer dtype). The whole
            batch is one package batch.
        eps: L-infinity radius in pixels; version: "standard" or "v1"; seed: the package's seed
            (every component reseeds the global torch generator with it, as the package does).
        check_square: add the package's Square check for this batch to ``flags`` (an evaluation
            over many batches calls :func:`square_flag` on its totals instead).
    """
    if version not in VERSIONS:
        raise ValueError(f"unknown AutoAttack version {version!r}; choose one of: {', '.join(VERSIONS)}")
    labels = check_batch(inputs, labels, eps)
    n = labels.shape[0]
    adversarial = inputs.detach().clone()
    with torch.no_grad():
        robust = model(inputs).argmax(1) == labels
    accuracy = {"clean": float(robust.float().mean()) if n else 0.0}
    robust_after: dict[str, torch.Tensor] = {}
    seconds: dict[str, float] = {}
    with collect_flags() as messages:
        adversary = build_adversary(model, eps=eps, version=version, seed=seed, device=inputs.device)
        for component in VERSIONS[version]:
            start = time.perf_counter()
            idx = robust.nonzero().squeeze(1)
            if idx.numel():
                adversary.attacks_to_run = [component]
                adv, y_adv = adversary.run_standard_evaluation(inputs[idx], labels[idx], batch_size=idx.numel())
                broken = (y_adv != labels[idx]).to(robust.device)
                adversarial[idx[broken]] = adv[broken].to(adversarial.dtype)
                robust[idx[broken]] = False
            robust_after[component] = robust.clone()
            seconds[component] = time.perf_counter() - start
            accuracy[component] = float(robust.float().mean()) if n else 0.0
    flags = list(messages)
    if check_square:
        extra = square_flag(accuracy)
        if extra:
            flags.append(extra)
    return AutoAttackResult(adversarial, robust_after, seconds, flags)


def autoattack(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float,
    version: str = "standard",
    seed: int = 0,
) -> torch.Tensor:
    """AutoAttack ("standard" or "v1") as a plain attack: (B, C, H, W) adversarial images in the
    eps-ball and [0, 1] (clean images where no component found a fooling point)."""
    return run_autoattack(model, inputs, labels, eps=eps, version=version, seed=seed).adversarial
