"""Name -> architecture registry and the model builder.

Every builder takes ``num_classes``, ``in_channels`` and ``image_size`` (keywords) and
returns a network mapping images ``(B, in_channels, image_size, image_size)`` in [0, 1]
to logits ``(B, num_classes)``. Parametric families (``wrn-D-W``) are matched by a
regular expression after the literal names.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from torch import nn

from nuat.errors import UsageError
from nuat.models.normalize import Normalize, NormalizedModel


class ModelBuilder(Protocol):
    """``builder(num_classes=, in_channels=, image_size=) -> nn.Module``."""

    def __call__(self, *, num_classes: int, in_channels: int, image_size: int) -> nn.Module: ...


FamilyBuilder = Callable[[re.Match[str]], ModelBuilder]

MODELS: dict[str, ModelBuilder] = {}
"""Literal model names and their builders."""

_FAMILIES: list[tuple[str, re.Pattern[str], FamilyBuilder]] = []
_FAMILY_MEANINGS: dict[str, str] = {}
"""(display pattern, compiled regex, match -> builder) for parametric names."""

Normalization = tuple[Sequence[float], Sequence[float]] | Mapping[str, Sequence[float]]


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering ``builder`` under ``name`` (a duplicate name is an error)."""

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = builder
        return builder

    return decorate


def register_family(display: str, pattern: str, meaning: str = "") -> Callable[[FamilyBuilder], FamilyBuilder]:
    """Decorator registering a parametric family, e.g. ``("wrn-D-W", r"wrn-(\\d+)-(\\d+)", "depth D, width W")``;
    ``meaning`` (what the pattern's letters stand for) is shown next to it where names are listed.

    The decorated function gets the full match and returns a builder; it raises
    :class:`UsageError` for parameters that do not make sense.
    """

    def decorate(factory: FamilyBuilder) -> FamilyBuilder:
        _FAMILIES.append((display, re.compile(pattern), factory))
        _FAMILY_MEANINGS[display] = meaning
        return factory

    return decorate


def model_names() -> list[str]:
    """Sorted literal names of the registered models (families such as ``wrn-D-W``
    accept further names; see :func:`family_patterns`)."""
    return sorted(MODELS)


def family_patterns() -> list[str]:
    """Display patterns of the parametric families, e.g. ``['wrn-D-W']``."""
    return [display for display, _, _ in _FAMILIES]


def _lookup(name: str) -> ModelBuilder:
    if name in MODELS:
        return MODELS[name]
    for _, regex, factory in _FAMILIES:
        match = regex.fullmatch(name)
        if match is not None:
            return factory(match)
    # a family's pattern is listed with what its letters stand for, so it does not read as a name
    choices = model_names() + [f"{display} ({_FAMILY_MEANINGS[display]})" if _FAMILY_MEANINGS.get(display) else display
                               for display in family_patterns()]
    close = difflib.get_close_matches(name, model_names(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(choices)}{hint}")


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{what} must be a positive integer, got {value!r}")
    return value


def _normalization_lists(
    normalization: Normalization | None, in_channels: int
) -> dict[str, list[float]] | None:
    """Return ``{"mean": [...], "std": [...]}`` (one float per channel) or None."""
    if normalization is None:
        return None
    if isinstance(normalization, Mapping):
        if set(normalization) != {"mean", "std"}:
            raise UsageError(f"normalization needs keys 'mean' and 'std', got {sorted(normalization)}")
        mean, std = normalization["mean"], normalization["std"]
    else:
        if len(normalization) != 2:
            raise UsageError("normalization must be a (mean, std) pair")
        mean, std = normalization
    try:
        mean_list = [float(m) for m in mean]
        std_list = [float(s) for s in std]
    except (TypeError, ValueError) as exc:
        raise UsageError(f"normalization mean/std must be lists of numbers: {exc}") from None
    for what, values in (("mean", mean_list), ("std", std_list)):
        if len(values) != in_channels:
            raise UsageError(
                f"normalization {what} has {len(values)} values but in_channels is {in_channels}"
            )
    if any(not s > 0 for s in std_list):
        raise UsageError(f"normalization std must be positive, got {std_list}")
    return {"mean": mean_list, "std": std_list}


def build_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    normalization: Normalization | None = None,
) -> nn.Module:
    """Build model ``name`` for inputs ``(B, in_channels, image_size, image_size)`` in [0, 1].

    ``normalization`` is ``(mean, std)`` (or ``{"mean": ..., "std": ...}``), one value per
    channel; when given the network is wrapped as ``NormalizedModel(Normalize, net)`` so
    attacks still work in [0, 1] pixel space. The result's ``model_spec`` attribute is a
    plain dict such that ``build_model(**model.model_spec)`` rebuilds the same architecture.
    Output: logits ``(B, num_classes)``. Raises :class:`UsageError` for bad input.
    """
    if not isinstance(name, str):
        raise UsageError(f"model name must be a string, got {name!r}")
    builder = _lookup(name)
    num_classes = _positive_int(num_classes, "num_classes")
    in_channels = _positive_int(in_channels, "in_channels")
    image_size = _positive_int(image_size, "image_size")
    norm = _normalization_lists(normalization, in_channels)

    net = builder(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    model: nn.Module = net
    if norm is not None:
        model = NormalizedModel(Normalize(norm["mean"], norm["std"]), net)
    model.model_spec = {
        "name": name,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": image_size,
        "normalization": copy.deepcopy(norm),
    }
    return model


def build_from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild a model from its ``model_spec`` dict (e.g. read from a checkpoint).

    Weights are freshly initialised; load the saved ``state_dict`` afterwards.
    """
    if not isinstance(spec, Mapping):
        raise UsageError(f"model spec must be a mapping, got {type(spec).__name__}")
    expected = {"name", "num_classes", "in_channels", "image_size"}
    allowed = expected | {"normalization"}
    missing, extra = expected - set(spec), set(spec) - allowed
    if missing or extra:
        raise UsageError(
            f"bad model spec: missing {sorted(missing)}, unexpected {sorted(extra)}"
        )
    return build_model(**dict(spec))


def check_model_name(name: str) -> None:
    """Raise :class:`UsageError` unless ``name`` is a registered model or a valid family member."""
    _lookup(name)
