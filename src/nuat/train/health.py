"""Training health: catastrophic-overfitting detection and rollback (divergence is in the loop).

Catastrophic overfitting (Wong et al., 2020; paper Sec. 4) shows as multi-step robust accuracy
collapsing while clean accuracy keeps rising. The loop measures both on the validation split
every epoch (I-FGSM-7), so the check costs nothing extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nuat.train import resume
from nuat.train.progress import EpochProgress

if TYPE_CHECKING:
    from nuat.train.loop import Run

#: a collapse: validation I-FGSM-7 accuracy below this fraction of the best so far ...
COLLAPSE_RATIO = 0.5
#: ... while validation clean accuracy did not fall by more than this (absolute) ...
CLEAN_SLACK = 0.02
#: ... and the best robust accuracy so far was meaningful.
MIN_ROBUST = 0.1


def is_collapse(best_robust: float | None, previous_clean: float | None, robust: float, clean: float) -> bool:
    """Robust accuracy collapsed (below half its best) while clean accuracy held or rose."""
    if best_robust is None or previous_clean is None or best_robust < MIN_ROBUST:
        return False
    return robust < COLLAPSE_RATIO * best_robust and clean >= previous_clean - CLEAN_SLACK


def after_epoch(run: "Run", epoch: int, stats: dict[str, Any]) -> bool:
    """Flag a collapse in ``stats``; return True when the epoch must be rolled back and redone."""
    collapsed = run.method.adversarial and is_collapse(
        run.best.get(""), run.health.get("previous_val_clean"), stats["val_ifgsm7_acc"], stats["val_clean_acc"])
    stats["collapse"] = collapsed
    if collapsed:
        run.log(f"warning: catastrophic overfitting suspected in epoch {epoch + 1}: validation I-FGSM-7 "
                f"{100 * stats['val_ifgsm7_acc']:.1f}% (best {100 * run.best['']:.1f}%) while clean accuracy "
                f"is {100 * stats['val_clean_acc']:.1f}%")
        if run.cfg.on_collapse == "rollback" and epoch not in run.rollbacks:
            if (run.out / "state" / "healthy.safetensors").exists() and run.method.has_remedy:
                run.rollbacks.add(epoch)
                return True
            run.log("  no healthy state or no remedy for this method: continuing")
    if run.remedy_active:
        run.method.set_remedy(False)
        run.remedy_active = False
        stats["remedy"] = True
    run.health["previous_val_clean"] = stats["val_clean_acc"]
    return False


def rollback(run: "Run") -> EpochProgress:
    """Restore the last healthy epoch end and switch the method's remedy on for the redone epoch."""
    epoch, progress = resume.restore_file(run, run.out / "state" / "healthy.safetensors")
    run.method.set_remedy(True)
    run.remedy_active = True
    run.log(f"  rolled back to the end of epoch {epoch}; redoing epoch {epoch + 1} with the method's remedy "
            f"({run.method.remedy})")
    return progress
