"""Figures: matplotlib on its file-only backend, and atomic PNG writes.

matplotlib is optional (the ``plot`` extra); every figure of the package is an extra beside a
result, never the result, so callers draw nothing where it is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["pyplot", "save_figure"]


def pyplot() -> Any | None:
    """``matplotlib.pyplot`` on the Agg backend (no display needed), or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` through a temporary file in the same folder (a reader never sees
    half a PNG), then close it; returns the path."""
    import matplotlib.pyplot as plt

    from nuat.checkpoints import atomic_write_bytes

    path = Path(path)
    try:  # the temp file's name ends in .tmp: the format comes from the real name
        atomic_write_bytes(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix[1:] or "png"))
    finally:
        plt.close(fig)
    return path
