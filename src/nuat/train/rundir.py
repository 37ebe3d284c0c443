"""The files ``nuat train`` writes into a run directory, and their removal before a fresh run."""

from __future__ import annotations

from pathlib import Path

from nuat.train.state import HEALTHY_STATE, state_iteration

#: the files a run writes at the top of its directory (checkpoints: the model and its ``-ema`` average)
RUN_FILES = ("config.json", "metrics.jsonl", "curves.png", "summary.json", "best.safetensors", "last.safetensors",
             "best-ema.safetensors", "last-ema.safetensors")
STATE_DIR = "state"
#: the files a run writes into ``state/`` (``nuat.train.state``, ``nuat.train.health``)
STATE_PATTERNS = ("state-*.safetensors", f"{HEALTHY_STATE}.safetensors")


def _ours(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """The files in ``folder`` matching ``names``, and temporary files of interrupted atomic writes of them."""
    found = []
    for name in names:
        matches = list(folder.glob(name))
        if name.startswith("state-"):  # numbered states only, not any file a user named state-*
            matches = [p for p in matches if state_iteration(p) is not None]
        found += matches + list(folder.glob(f".{name}.*.tmp"))  # temp files: a kill inside atomic_write_bytes
    return [p for p in found if p.is_file()]


def saved_states(out: Path) -> list[Path]:
    """The numbered training states in ``out/state`` (what ``--resume`` continues from)."""
    state = out / STATE_DIR
    return [p for p in _ours(state, STATE_PATTERNS[:1]) if not p.name.endswith(".tmp")] if state.is_dir() else []


def clear_run_outputs(out: Path) -> list[Path]:
    """Delete what an earlier run left in ``out`` (``--overwrite``); returns the deleted paths.

    Stale files would otherwise be taken for the new run's: old checkpoints reported by its final
    evaluation, old states with higher iteration numbers resumed or pruning the new ones, an old
    ``summary.json`` marking the new run finished. Only nuat's own outputs go; other files, and
    ``state/`` if it then still holds any, stay.
    """
    removed = _ours(out, RUN_FILES)
    state = out / STATE_DIR
    if state.is_dir():
        removed += _ours(state, STATE_PATTERNS)
    for path in removed:
        path.unlink(missing_ok=True)
    if state.is_dir() and not state.is_symlink() and not any(state.iterdir()):
        state.rmdir()
    return removed
