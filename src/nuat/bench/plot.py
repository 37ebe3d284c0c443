"""``<out>.png`` beside a ``nuat bench`` report: each method's time per iteration against its floor.

One horizontal bar per (method, variant): the median time per iteration with its quartiles
over trials as a whisker, the floor from the method's pass counts as a crimson tick, and the
ratio to ERM of the same variant as a label. Needs matplotlib (the ``plot`` extra); without it
no figure is drawn.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from nuat.figures import pyplot, save_figure

__all__ = ["plot_bench"]


def plot_bench(result: dict[str, Any], path: str | Path, title: str = "nuat bench") -> Path | None:
    """Draw the methods of a ``nuat bench`` result to ``path`` (written atomically); returns the
    path, or None when matplotlib is missing or the result times no method."""
    plt = pyplot()
    methods = result.get("methods") or []
    if plt is None or not methods:
        return None
    multi = len(result["config"]["variants"]) > 1
    labels = [m["method"] + (f" ({m['variant']})" if multi else "") for m in methods]
    ms = [1e3 * m["seconds_per_iteration"]["median"] for m in methods]
    low = [v - 1e3 * m["seconds_per_iteration"]["q1"] for v, m in zip(ms, methods)]
    high = [1e3 * m["seconds_per_iteration"]["q3"] - v for v, m in zip(ms, methods)]
    floors = [1e3 * m["floor_seconds"]["median"] for m in methods]
    variants = list(dict.fromkeys(m["variant"] for m in methods))
    colours = [f"C{variants.index(m['variant']) % 10}" for m in methods]
    rows = list(range(len(methods)))[::-1]  # first method on top
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(methods) + 1.6))
    ax.barh(rows, ms, xerr=[low, high], color=colours, alpha=0.8, capsize=3)
    ax.scatter(floors, rows, marker="|", s=400, linewidths=2.5, color="crimson", zorder=3,
               label="floor from pass counts")
    for row, m, value, up in zip(rows, methods, ms, high):
        ratio = m.get("relative_to_erm")
        text = f"{value:.1f} ms" + (f", {ratio['median']:.2f}x ERM" if ratio else "")
        ax.text(value + up, row, "  " + text, va="center", fontsize=8)  # right of the whisker
    ax.set_yticks(rows, labels)
    ax.set_xlabel("ms per iteration (median; whiskers: quartiles over trials)")
    ax.set_xlim(0, max(ms[i] + high[i] for i in range(len(ms))) * 1.45)
    env = result["environment"]
    # over the whole figure, wrapped: above the axes alone a long title runs past the figure's
    # right edge once the variant names make the row labels wide
    heading = textwrap.fill(title, 100)
    fig.suptitle(f"{heading}\n{env['device']}, batch {result['config']['batch_size']}, commit {env['commit'][:7]}",
                 fontsize=9)
    # below the bars (rows run 0..n-1 bottom up): in the lower right it ran into the bottom bar's label
    ax.set_ylim(-1.3, len(methods) - 0.5)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)
