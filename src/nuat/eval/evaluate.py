"""``evaluate``: one model, a list of attacks, the first n test images -> eval.json + eval.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from nuat.eval.registry import Settings, build_jobs, parse_attacks
from nuat.eval.report import FORMAT, summarize, write_outputs
from nuat.eval.runner import run_jobs
from nuat.eval.targets import EvalTarget, check_image_size, load_test_data
from nuat.errors import UsageError


@dataclass(frozen=True)
class EvalOptions:
    """What to run. ``n`` None means the whole test set; ``settings`` holds eps and the attack
    parameters; ``eps_text`` is eps as the user wrote it (e.g. "8/255")."""

    attacks: str
    dataset: str
    settings: Settings
    eps_text: str
    n: int | None = None
    batch_size: int = 500
    seed: int = 0
    data_dir: str | None = None
    device: str = "cpu"
    progress: bool = True


def evaluate(target: EvalTarget, options: EvalOptions, out: str | Path, *, fresh: bool = False,
             data: Any = None) -> dict[str, Any]:
    """Evaluate ``target`` (resuming from ``out/state.json`` unless ``fresh``) and write
    ``out/eval.json`` and ``out/eval.md``. Returns the result dict.

    Raises :class:`UsageError` for bad options or a state from another evaluation, and
    :class:`nuat.projections.ThreatModelViolation` if an attack leaves the threat model.
    """
    from nuat.data import check_classes
    from nuat.train.meta import provenance

    if options.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {options.batch_size}")
    if options.seed != options.settings.seed:  # the attacks' and AutoAttack's seed must be one
        raise UsageError(f"EvalOptions.seed {options.seed} and Settings.seed {options.settings.seed} differ; "
                         "set both to the evaluation's seed")
    # at the model's input size: a folder split would otherwise take its first image's size
    data = load_test_data(options.dataset, options.data_dir, [target], progress=options.progress) if data is None else data
    check_classes(data, target.metadata.get("classes"), str(target.path))
    check_image_size(data, target)
    n = len(data) if options.n is None else options.n
    if not 1 <= n <= len(data):
        raise UsageError(f"--n {n} is outside 1..{len(data)} (the {options.dataset} test set)")
    requests = parse_attacks(options.attacks, n)
    jobs = build_jobs(requests, options.settings)
    n = jobs[0].n
    device = torch.device(options.device)
    out = Path(out)
    header = {"checkpoint_sha256": target.sha256, "dataset": options.dataset, "split": "test",
              "eps": options.settings.eps, "seed": options.seed, "batch_size": options.batch_size}
    if not target.metadata:  # a plain state dict: --model and --mean/--std make the model, not the file alone
        header["model_spec"] = target.model_spec
    state = run_jobs(target.model, jobs, data, out / "state.json", header, eps=options.settings.eps,
                     seed=options.seed, batch_size=options.batch_size, device=device,
                     progress=options.progress, fresh=fresh)
    meta = {k: v for k, v in target.metadata.items() if k not in ("format", "model_spec")}
    result = {
        "format": FORMAT,
        "checkpoint": {"name": target.name, "path": str(target.path), "sha256": target.sha256,
                       "model": target.model_name, "model_spec": target.model_spec, "metadata": meta},
        "dataset": options.dataset, "split": "test", "n": n, "threat_model": "linf",
        "eps": options.settings.eps, "eps_text": options.eps_text, "seed": options.seed,
        "batch_size": options.batch_size, "settings": asdict(options.settings),
        **summarize(jobs, state),
        "provenance": {**provenance(), "device": str(device)},
    }
    write_outputs(out, result)
    return result
