"""What a partly trained epoch has accumulated (kept in the training state for exact resumption)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class EpochProgress:
    """Sums of the current epoch. ``sums`` are device tensors (read once per epoch); ``passes`` are
    (forwards, input-only backwards, full backwards) summed over examples; ``batch`` is the next
    batch index; ``seconds`` the training time spent in this epoch so far."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    passes: list[int] = field(default_factory=lambda: [0, 0, 0])
    batch: int = 0
    seconds: float = 0.0

    def add(self, sums: dict[str, torch.Tensor], passes: tuple[int, int, int], m: int) -> None:
        for key, value in sums.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value.detach().clone()
        self.passes = [p + m * q for p, q in zip(self.passes, passes)]
        self.batch += 1

    def loss_is_finite(self) -> bool:
        """One host read: NaN/Inf in any step's loss propagates into the summed loss."""
        loss = self.sums.get("loss")
        return loss is None or bool(torch.isfinite(loss))
