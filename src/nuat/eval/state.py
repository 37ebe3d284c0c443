"""Resumable per-example evaluation state, written atomically after every batch.

One JSON file holds a header (checkpoint hash, data set, eps, seed, batch size, device type) and,
per job, its parameters, the number of batches done, the per-example robust flags of every output
as a string of ``0``/``1`` (image i of the test set is character i), the seconds spent and the
flags (warnings) raised. A state whose header or job parameters differ from the current
evaluation is refused, so numbers from two different evaluations are never mixed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nuat.checkpoints import atomic_write_text
from nuat.errors import UsageError

FORMAT = "nuat-eval-state/1"


def flags_to_text(flags: torch.Tensor) -> str:
    """(B,) bool -> ``"0110..."``."""
    return "".join("1" if v else "0" for v in flags.tolist())


def text_to_flags(text: str) -> torch.Tensor:
    """``"0110..."`` -> (B,) bool on the CPU."""
    return torch.tensor([c == "1" for c in text], dtype=torch.bool)


def _differences(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    keys = sorted(set(stored) | set(wanted))
    return "; ".join(f"{k}: stored {stored.get(k)!r}, now {wanted.get(k)!r}" for k in keys
                     if stored.get(k) != wanted.get(k))


class EvalState:
    """The state file of one checkpoint's evaluation (see module docstring)."""

    def __init__(self, path: Path, header: dict[str, Any], jobs: dict[str, dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self.header = dict(header)
        self.jobs: dict[str, dict[str, Any]] = jobs or {}

    @classmethod
    def open(cls, path: str | Path, header: dict[str, Any], *, fresh: bool = False) -> "EvalState":
        """Load the state at ``path`` (or start an empty one when absent or ``fresh``).

        Raises :class:`UsageError` when the stored header differs from ``header``.
        """
        path = Path(path)
        wanted = {"format": FORMAT, **header}
        if fresh or not path.exists():
            return cls(path, wanted)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"evaluation state {path} is unreadable ({exc}); pass --overwrite to start again") from None
        stored = data.get("header", {})
        if "device" in stored and "device" in wanted and stored["device"] != wanted["device"]:
            # CPU and CUDA generators seeded alike give different numbers: resuming on the other
            # device type would mix two random streams in one set of per-example results
            raise UsageError(f"{path} was started on device type {stored['device']!r}, this run uses "
                             f"{wanted['device']!r} (their random streams differ); resume with --device "
                             f"{stored['device']}, or choose another --out or pass --overwrite to start again")
        if stored != wanted:
            raise UsageError(f"{path} holds an evaluation with other settings ({_differences(stored, wanted)}); "
                             "choose another --out or pass --overwrite to start again")
        return cls(path, wanted, data.get("jobs", {}))

    def job(self, key: str, params: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
        """The record of job ``key`` (created empty if new); refuses other parameters."""
        params = json.loads(json.dumps(params))  # the form it takes after a round trip
        record = self.jobs.get(key)
        if record is None:
            record = {"params": params, "batches": 0, "flags": {o: "" for o in outputs},
                      "seconds": dict.fromkeys(outputs, 0.0), "messages": []}
            self.jobs[key] = record
        elif record["params"] != params:
            raise UsageError(f"{self.path} holds {key} run with other parameters "
                             f"({_differences(record['params'], params)}); choose another --out or pass --overwrite")
        return record

    def add_batch(self, key: str, flags: dict[str, torch.Tensor], seconds: dict[str, float], messages: list[str]) -> None:
        """Append one batch's per-example flags and seconds to job ``key`` and save atomically."""
        record = self.jobs[key]
        for name, value in flags.items():
            record["flags"][name] += flags_to_text(value)
            record["seconds"][name] += float(seconds[name])
        for message in messages:
            if message not in record["messages"]:
                record["messages"].append(message)
        record["batches"] += 1
        self.save()

    def flags(self, key: str, name: str) -> torch.Tensor:
        """Per-example robust flags of output ``name`` of job ``key`` so far, (done,) bool."""
        return text_to_flags(self.jobs[key]["flags"][name])

    def save(self) -> None:
        text = json.dumps({"header": self.header, "jobs": self.jobs}, indent=1)
        atomic_write_text(self.path, text)
