"""Training health: catastrophic-overfitting detection and rollback (divergence is in the loop).

Catastrophic overfitting (Wong et al., 2020; paper Sec. 4) shows as multi-step robust accuracy
collapsing while clean accuracy keeps rising. The loop measures both on the validation split
every epoch (I-FGSM-7), so the check costs nothing extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nuat.train import resume
from nuat.train.progress import EpochProgress
from nuat.train.state import HEALTHY_STATE, read_state

if TYPE_CHECKING:
    from nuat.train.loop import Run

#: a collapse: validation I-FGSM-7 accuracy below this fraction of the best so far ...
COLLAPSE_RATIO = 0.5
#: ... while validation clean accuracy did not fall by more than this (absolute) ...
CLEAN_SLACK = 0.02
#: ... and the best robust accuracy so far was meaningful.
MIN_ROBUST = 0.1
#: the state a rollback restores: the end of the last epoch without a collapse warning
HEALTHY = f"{HEALTHY_STATE}.safetensors"


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
            reason = _cannot_roll_back(run, epoch)
            if reason is None:
                run.rollbacks.add(epoch)
                return True
            run.log(f"  {reason}: continuing")
    if run.remedy_active:
        run.method.set_remedy(False)
        run.remedy_active = False
        stats["remedy"] = True
    run.health["previous_val_clean"] = stats["val_clean_acc"]
    return False


def _cannot_roll_back(run: "Run", epoch: int) -> str | None:
    """Why epoch ``epoch`` (0-based) cannot be redone, or None when it can.

    Only the end of the previous epoch is a valid restart point: after a redone epoch collapsed
    again it was kept, so the healthy state is older, and restoring it would silently discard
    epochs already logged and saved."""
    if not run.method.has_remedy:
        return "no remedy for this method"
    path = run.out / "state" / HEALTHY
    if not path.exists():
        return "no healthy state"
    try:
        # read and verified in full (a collapse is rare): a state whose tensors are corrupt would
        # otherwise fail the restore after the rollback was decided
        healthy_epoch = read_state(path)[1]["epoch"]
    except Exception as exc:  # noqa: BLE001 (truncated file, bad JSON, hash mismatch: nothing to restore)
        return f"the healthy state {path} is unreadable ({exc})"
    if healthy_epoch != epoch:
        return f"the last healthy state is from the end of epoch {healthy_epoch}, not {epoch}"
    return None


def rollback(run: "Run") -> tuple[int, EpochProgress]:
    """Restore the last healthy epoch end and switch the method's remedy on for the redone epoch.

    Returns (epoch to redo, its progress). The restored state is saved at once as the newest
    state, which also deletes the abandoned attempt's later states, so a kill during the redone
    epoch resumes it with the remedy rather than the collapsed attempt."""
    done = set(run.rollbacks)  # the healthy state predates this rollback; its record must not shrink
    epoch, progress = resume.restore_file(run, run.out / "state" / HEALTHY)
    run.rollbacks = done
    run.method.set_remedy(True)
    run.remedy_active = True
    resume.save(run, epoch, progress)
    run.log(f"  rolled back to the end of epoch {epoch}; redoing epoch {epoch + 1} with the method's remedy "
            f"({run.method.remedy})")
    return epoch, progress
