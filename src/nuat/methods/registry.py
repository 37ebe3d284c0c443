"""Registry of training methods: name -> how to build it and its published defaults."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nuat.errors import UsageError
from nuat.methods.base import Method, MethodDefaults


@dataclass(frozen=True)
class MethodEntry:
    name: str
    build: Callable[..., Method]
    defaults: MethodDefaults
    summary: str
    #: method hyperparameters that may be overridden from the command line, with their defaults
    hparams: dict[str, Any]


METHODS: dict[str, MethodEntry] = {}
#: other spellings of a registered method (``nuat-h-wa`` is the published ``nuat-wa-h``)
ALIASES: dict[str, str] = {}

#: ``<name>-wa`` is ``<name>`` with an exponential weight average as its reported model (paper
#: Sec. 5.4: tau 0.9998, updated after every optimiser step), e.g. pgd-at-wa, trades-wa, gat-wa.
WA_SUFFIX = "-wa"
WA_TAU = 0.9998


def register_method(name: str, *, build: Callable[..., Method], defaults: MethodDefaults, summary: str,
                    hparams: dict[str, Any] | None = None) -> None:
    """Add a method. ``build(**hparams)`` must return a fresh :class:`Method`."""
    if name in METHODS:
        raise ValueError(f"method {name!r} registered twice")
    METHODS[name] = MethodEntry(name, build, defaults, summary, dict(hparams or {}))


def register_alias(alias: str, target: str) -> None:
    """Let ``alias`` name the registered method ``target`` (same entry, same defaults)."""
    if alias in METHODS or alias in ALIASES or target not in METHODS:
        raise ValueError(f"alias {alias!r} -> {target!r}: taken, or the target is not registered")
    ALIASES[alias] = target


def unknown_name_message(kind: str, name: str, choices: list[str]) -> str:
    """One line: "unknown <kind> 'x'; choose one of: a, b (did you mean 'a'?)"."""
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(choices))}{hint}"


def with_weight_average(entry: MethodEntry, name: str | None = None, tau: float = WA_TAU) -> MethodEntry:
    """``entry`` plus an ``"ema"`` weight average (kept at its own tau if it already has one)."""
    averages = {**entry.defaults.averages, "ema": entry.defaults.averages.get("ema", tau)}
    return MethodEntry(name or entry.name + WA_SUFFIX, entry.build,
                       dataclasses.replace(entry.defaults, averages=averages),
                       f"{entry.summary}; with weight averaging (tau {averages['ema']})", entry.hparams)


def get_method(name: str) -> MethodEntry:
    """The registered method ``name``; an unregistered ``<base>-wa`` resolves to ``<base>`` with a
    weight average (registered names win: ``nuat-wa`` keeps its own published defaults), unless
    ``<base>`` already keeps one (``nuat-wa-wa`` is refused)."""
    if name in METHODS:
        return METHODS[name]
    if name in ALIASES:
        return METHODS[ALIASES[name]]
    base = name[: -len(WA_SUFFIX)] if name.endswith(WA_SUFFIX) else None
    if base in METHODS:
        if "ema" in METHODS[base].defaults.averages:
            # the suffix would change only the name: the run would be filed under a method that
            # does not exist (nuat-wa-wa), so a doubled suffix is refused as the typo it is
            raise UsageError(f"unknown method {name!r}; {base!r} already keeps a weight average, "
                             f"use {base!r}")
        return with_weight_average(METHODS[base], name)
    raise UsageError(unknown_name_message("method", name, list(METHODS)) + f"; any of them + {WA_SUFFIX!r} "
                     "adds weight averaging")


def build_method(name: str, **overrides: Any) -> Method:
    """Build method ``name`` with its registered hyperparameters, overridden by ``overrides``."""
    entry = get_method(name)
    unknown = sorted(set(overrides) - set(entry.hparams))
    if unknown:
        raise UsageError(f"method {name!r} has no hyperparameter {unknown[0]!r}; it takes: "
                         f"{', '.join(sorted(entry.hparams)) or 'none'}")
    method = entry.build(**{**entry.hparams, **overrides})
    method.name = name
    method.defaults = entry.defaults
    return method
