"""Progress bars of the data layer (decoding a data set into memory, downloads).

Shown where stderr is a terminal (tqdm's ``disable=None``), never elsewhere; ``load_dataset(...,
progress=False)`` (the commands' ``--no-progress``) turns them off for everything it does, through
:func:`progress_bars`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["bar_disable", "progress_bars"]

_ENABLED: ContextVar[bool] = ContextVar("nuat_data_progress", default=True)


def bar_disable() -> bool | None:
    """tqdm's ``disable`` for a data-layer bar: True when turned off, else None (a bar on a terminal only)."""
    return None if _ENABLED.get() else True


@contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Within the block, the data layer's bars are allowed (``enabled``) or turned off."""
    token = _ENABLED.set(bool(enabled))
    try:
        yield
    finally:
        _ENABLED.reset(token)
