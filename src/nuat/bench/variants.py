"""Bench variants: which fast-path switches a timed run uses ("fp32" is the faithful step).

A variant is written as names joined by ``+``: ``fp32``, ``bf16``, ``channels-last``,
``compile``, ``group64`` (any ``groupN``: nuclear-norm group size N for the NuAT family) and
``fast`` (``bf16+channels-last+compile+group64``, what ``nuat train --fast`` does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nuat.errors import UsageError
from nuat.train.fastpath import FAST_NUCLEAR_GROUP_SIZE

PARTS = ("fp32", "bf16", "channels-last", "compile", "groupN", "fast")


@dataclass(frozen=True)
class Variant:
    name: str
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    group_size: int | None = None

    @property
    def faithful(self) -> bool:
        return self.amp == "off" and not self.channels_last and not self.compile and self.group_size is None


def parse_variant(text: str) -> Variant:
    """``"bf16+channels-last"`` -> Variant(amp="bf16", channels_last=True). UsageError otherwise."""
    name = text.strip()
    amp, channels_last, compile_, group = "off", False, False, None
    parts = [p.strip() for p in name.split("+")]
    if not name or any(not p for p in parts):
        raise UsageError(f"empty variant in {text!r}; variants are names joined by '+': {', '.join(PARTS)}")
    for part in parts:
        match = re.fullmatch(r"group-?(\d+)", part)
        if part == "fp32":
            continue
        if part == "bf16":
            amp = "bf16"
        elif part in ("channels-last", "cl"):
            channels_last = True
        elif part == "compile":
            compile_ = True
        elif part == "fast":
            amp, channels_last, compile_ = "bf16", True, True
            group = group or FAST_NUCLEAR_GROUP_SIZE
        elif match:
            group = int(match.group(1))
            if group < 1:
                raise UsageError(f"variant {part!r}: the group size must be positive")
        else:
            raise UsageError(f"unknown variant part {part!r}; choose from: {', '.join(PARTS)} (joined by '+')")
    return Variant(name, amp, channels_last, compile_, group)


def parse_variants(text: str) -> list[Variant]:
    """A comma-separated list of variants, without duplicates."""
    variants = [parse_variant(p) for p in text.split(",")]
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise UsageError(f"variant listed twice in {text!r}")
    return variants
