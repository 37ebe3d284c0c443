"""``curves.png`` in a run directory: the training curves of ``metrics.jsonl`` at a glance.

Three panels per epoch: accuracies (training clean and adversarial, validation clean and
I-FGSM-7, the weight average's dashed; the best epoch, chosen on validation I-FGSM-7, marked),
the training loss and its parts, and the schedules (learning rate; lambda on its own axis).
Redrawn from the whole file (so a resumed run's plot covers every epoch) after an epoch when a
minute has passed since the last drawing, and at the end of the run (``nuat.train.loop``).
Needs matplotlib (the ``plot`` extra); without it no plot is drawn and training goes on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from nuat.figures import pyplot, save_figure

__all__ = ["plot_training_curves", "best_epoch"]

#: (key in metrics.jsonl, label, colour, line style) of the accuracy panel; the weight average's
#: validation curves share the model's colours, dashed
ACCURACIES = (
    ("train_clean_acc", "train clean", "C0", "-"),
    ("train_adv_acc", "train adversarial", "C1", "-"),
    ("val_clean_acc", "val clean", "C2", "-"),
    ("val_ifgsm7_acc", "val I-FGSM-7", "C3", "-"),
    ("val_clean_acc_ema", "val clean, average", "C2", "--"),
    ("val_ifgsm7_acc_ema", "val I-FGSM-7, average", "C3", "--"),
)
LOSSES = (("loss", "loss"), ("ce_clean", "clean CE"), ("regulariser", "regulariser (before x lambda)"))


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]] | None:
    points = [(r["epoch"], float(r[key])) for r in records
              if isinstance(r.get(key), (int, float)) and math.isfinite(float(r[key]))]
    return ([e for e, _ in points], [v for _, v in points]) if points else None


def best_epoch(records: list[dict[str, Any]]) -> int | None:
    """The epoch whose checkpoint is reported: the first with the highest validation I-FGSM-7
    accuracy, of the weight average where the run keeps one (``nuat.train.loop.save_epoch``);
    the last epoch when the run has no validation split (its scores are NaN)."""
    s = _series(records, "val_ifgsm7_acc_ema") or _series(records, "val_ifgsm7_acc")
    if s is None:
        return records[-1]["epoch"] if records else None
    return s[0][max(range(len(s[1])), key=s[1].__getitem__)]


#: epochs up to which each point gets a marker
MAX_DOTTED_EPOCHS = 30


def plot_training_curves(metrics_path: str | Path, png_path: str | Path, title: str = "") -> Path | None:
    """Draw ``png_path`` from the epoch records in ``metrics_path`` (written atomically); returns
    the path, or None when there is nothing to draw or matplotlib is not installed."""
    plt = pyplot()
    if plt is None:
        return None
    from matplotlib.ticker import MaxNLocator

    lines = Path(metrics_path).read_text().splitlines() if Path(metrics_path).exists() else []
    records = [json.loads(line) for line in lines if line.strip()]
    if not records:
        return None
    fig, (acc, loss, sched) = plt.subplots(1, 3, figsize=(14, 3.8))
    # a dot per epoch, except on long runs, where dots would hide the weight average's dashes
    dot = "." if len(records) <= MAX_DOTTED_EPOCHS else None
    for key, label, colour, style in ACCURACIES:
        s = _series(records, key)
        if s:
            acc.plot(s[0], [100 * v for v in s[1]], style, color=colour, marker=dot, label=label)
    epoch = best_epoch(records)
    if epoch is not None:
        acc.axvline(epoch, color="grey", linestyle=":", label=f"best epoch ({epoch})")
    acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    acc.legend(fontsize=7)
    for key, label in LOSSES:
        s = _series(records, key)
        if s:
            loss.plot(s[0], s[1], marker=dot, label=label)
    loss.set(xlabel="epoch", title="training loss (epoch mean)")
    loss.legend(fontsize=7)
    s = _series(records, "lr")
    if s:
        sched.plot(s[0], s[1], color="C0", marker=dot, label="learning rate (last step)")
    sched.set(xlabel="epoch", ylabel="learning rate", title="schedules")
    handles = sched.get_lines()
    lam = _series(records, "lambda")
    axes = [sched]
    if lam and any(v != 0 for v in lam[1]):
        twin = sched.twinx()
        handles += twin.plot(lam[0], lam[1], color="C1", marker=dot, label="lambda (right axis)")
        twin.set_ylabel("lambda", color="C1")
        axes.append(twin)
    # head room above both curves for the legend: at the upper left it hid the learning rate's
    # peak (and a short run's first points)
    for axis in axes:
        axis.set_ylim(0, axis.get_ylim()[1] * 1.4)
    sched.legend(handles=handles, fontsize=7, loc="upper left")
    for ax in (acc, loss, sched):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, png_path)
