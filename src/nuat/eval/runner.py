"""Run evaluation jobs batch by batch with a checked threat model and resumable state.

For each job (clean first), batches of the first ``job.n`` test images are attacked in order;
batch k's randomness comes from a generator seeded with (seed, job, k), so a batch gives the
same result whether it runs in the first or in a resumed process on the same device type (the
state records it: CPU and CUDA generators give different streams). Every adversarial batch is
checked against the eps-ball and [0, 1] (:func:`nuat.projections.check_linf`) before its
per-example flags are stored; a violation stops the evaluation.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from nuat.attacks.common import eval_mode
from nuat.eval.registry import Job
from nuat.eval.state import EvalState
from nuat.projections import ThreatModelViolation, check_linf


def batch_seed(seed: int, key: str, batch: int) -> int:
    """A 63-bit seed derived from (evaluation seed, job key, batch index)."""
    digest = hashlib.sha256(f"{seed}/{key}/{batch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def load_batch(data: Any, lo: int, hi: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Test images lo..hi-1 as float32 (B, C, H, W) in [0, 1] and int64 labels (B,) on ``device``."""
    index = torch.arange(lo, hi)
    x = data.get_batch(index).to(device=device, dtype=torch.float32).div_(255.0)
    return x, data.labels[index].to(device)


def score_batch(model: nn.Module, job: Job, x: torch.Tensor, y: torch.Tensor, clean_ok: torch.Tensor | None,
                generator: torch.Generator, eps: float, where: str
                ) -> tuple[dict[str, torch.Tensor], dict[str, float], list[str]]:
    """Attack the clean-correct images of one batch and score every output of ``job``.

    Returns (flags, seconds, messages): flags maps each output to a (B,) bool robust tensor on
    the CPU (False for clean-misclassified images). Raises :class:`ThreatModelViolation`
    (message starting with ``where``) if the adversarial batch leaves the eps-ball or the box.
    """
    start = time.perf_counter()
    b = y.shape[0]
    idx = torch.arange(b, device=y.device) if clean_ok is None else clean_ok.nonzero().squeeze(1)
    flags = {o: torch.zeros(b, dtype=torch.bool) for o in job.outputs}
    seconds = dict.fromkeys(job.outputs, 0.0)
    if idx.numel() == 0:
        return flags, seconds, []
    xs, ys = x[idx], y[idx]
    # float32 whatever the caller's autocast: attacks and the final check are the measurement
    with eval_mode(model), torch.autocast(x.device.type, enabled=False):
        out = job.run(model, xs, ys, generator)
        try:
            check_linf(out.adversarial, xs, eps)
        except ThreatModelViolation as exc:
            raise ThreatModelViolation(f"{where}: {exc}; the evaluation stopped, this batch was not counted") from None
        with torch.no_grad():
            ok = model(out.adversarial.to(torch.float32)).argmax(1) == ys
    total = time.perf_counter() - start
    for o in job.outputs:
        # a non-robust count must be backed by the checked batch: readouts only lose examples
        # that the checked batch also fools (they hold each example's first fooling point)
        value = ok if o == job.final else (out.readouts[o].to(ok.device) | ok)
        flags[o][idx.cpu()] = value.cpu()
        seconds[o] = out.seconds.get(o, total)
    return flags, seconds, list(out.flags)


def job_title(job: Job) -> str:
    """Progress-bar title, e.g. ``PGD-7/20/100`` or ``FGSM``."""
    labels = [job.labels[r] for r in job.rows]
    if len(labels) > 1 and all(lab.startswith("PGD-") for lab in labels):
        return "PGD-" + "/".join(lab[4:] for lab in labels)
    return ", ".join(labels)


def run_job(model: nn.Module, job: Job, data: Any, state: EvalState, *, eps: float, seed: int, batch_size: int,
            device: torch.device, clean_key: str, progress: bool) -> None:
    """Run the batches of ``job`` that ``state`` does not hold yet, saving after each one."""
    record = state.job(job.key, job.params, job.outputs)
    n_batches = math.ceil(job.n / batch_size)
    if record["batches"] >= n_batches:
        return
    title = job_title(job)
    bar = tqdm(total=n_batches, initial=record["batches"], desc=f"{title} ({job.n} images)", unit="batch",
               disable=None if progress else True, leave=True, dynamic_ncols=True)  # None: only on a terminal
    try:
        for k in range(record["batches"], n_batches):
            lo, hi = k * batch_size, min((k + 1) * batch_size, job.n)
            x, y = load_batch(data, lo, hi, device)
            clean_ok = None if job.key == clean_key else state.flags(clean_key, "clean")[lo:hi].to(device)
            generator = torch.Generator(device=device).manual_seed(batch_seed(seed, job.key, k))
            flags, seconds, messages = score_batch(model, job, x, y, clean_ok, generator, eps,
                                                   where=f"{title}, images {lo}..{hi - 1}")
            state.add_batch(job.key, flags, seconds, messages)
            bar.update(1)
    finally:
        bar.close()


def run_jobs(model: nn.Module, jobs: list[Job], data: Any, state_path: Path, header: dict[str, Any], *,
             eps: float, seed: int, batch_size: int, device: torch.device, progress: bool,
             fresh: bool = False) -> EvalState:
    """Run (or resume) all ``jobs``; the first must be the clean job. Returns the final state.

    The state's header is ``header`` plus ``device``, the device type ("cpu", "cuda", ...): batch
    k's generator lives on ``device``, and CPU and CUDA generators seeded alike draw different
    numbers, so a state is resumed only on the device type that started it.
    """
    header = {**header, "device": device.type}
    state = EvalState.open(state_path, header, fresh=fresh)
    clean_key = jobs[0].key
    for job in jobs:
        run_job(model, job, data, state, eps=eps, seed=seed, batch_size=batch_size, device=device,
                clean_key=clean_key, progress=progress)
    return state
