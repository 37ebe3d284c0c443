"""Bench variants: which fast-path switches a timed run uses ("fp32" is the faithful step).

A variant is written as names joined by ``+``: ``fp32``, ``bf16``, ``channels-last``,
``compile``, ``group64`` (any ``groupN``: nuclear-norm group size N for the NuAT family),
``fast`` (``bf16+channels-last+compile+group64``, what ``nuat train --fast`` does),
``reduce-overhead`` (compiled in torch.compile's CUDA-graph mode, ``nuat train --compile-mode
reduce-overhead``; implies ``compile``) and
``nuclear-B`` (nuclear-norm backend B, e.g. ``fast+nuclear-newton-schulz``; default ``auto``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nuat.errors import UsageError
from nuat.losses import NUCLEAR_BACKENDS
from nuat.train.fastpath import FAST_NUCLEAR_GROUP_SIZE

PARTS = ("fp32", "bf16", "channels-last", "compile", "reduce-overhead", "groupN", "fast", "nuclear-B")


@dataclass(frozen=True)
class Variant:
    name: str
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"
    group_size: int | None = None
    nuclear_backend: str = "auto"


def parse_variant(text: str) -> Variant:
    """``"bf16+channels-last"`` -> Variant(amp="bf16", channels_last=True). UsageError otherwise."""
    name = text.strip()
    amp, channels_last, compile_, group, backend = "off", False, False, None, "auto"
    compile_mode = "default"
    parts = [p.strip() for p in name.split("+")]
    if not name or any(not p for p in parts):
        raise UsageError(f"empty variant in {text!r}; variants are names joined by '+': {', '.join(PARTS)}")
    if len(set(parts)) != len(parts):
        raise UsageError(f"variant {name!r} names a part twice; give each once")
    if "fp32" in parts and ({"bf16", "fast"} & set(parts)):
        # fp32 says "no autocast": with bf16 the name would contradict what is timed
        raise UsageError(f"variant {name!r}: fp32 (no autocast) contradicts bf16/fast; drop one of them")
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
        elif part == "reduce-overhead":
            compile_, compile_mode = True, "reduce-overhead"
        elif part == "fast":
            amp, channels_last, compile_ = "bf16", True, True
            group = group or FAST_NUCLEAR_GROUP_SIZE
        elif part.startswith("nuclear-"):
            backend = part[len("nuclear-"):]
            if backend not in NUCLEAR_BACKENDS:
                raise UsageError(f"variant part {part!r}: unknown nuclear-norm backend {backend!r}; "
                                 f"choose one of: {', '.join(NUCLEAR_BACKENDS)}")
        elif match:
            group = int(match.group(1))
            if group < 1:
                raise UsageError(f"variant {part!r}: the group size must be positive")
        else:
            raise UsageError(f"unknown variant part {part!r}; choose from: {', '.join(PARTS)} (joined by '+')")
    return Variant(name, amp, channels_last, compile_, compile_mode, group, backend)


def parse_variants(text: str) -> list[Variant]:
    """A comma-separated list of variants, without duplicates."""
    if any(not p.strip() for p in text.split(",")):  # "fp32,,bf16" or a trailing comma: name the value typed
        raise UsageError(f"--variants {text!r} has an empty entry; give variants separated by single commas, "
                         "e.g. fp32,fast")
    variants = [parse_variant(p) for p in text.split(",")]
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise UsageError(f"variant listed twice in {text!r}")
    return variants
