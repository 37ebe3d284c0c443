"""The gradient-masking checks of Athalye, Carlini & Wagner (ICML 2018, Sec. 3.1), which the NuAT
paper's supplementary relies on (paper Sec. 6.4), each reported PASS or FLAG with its numbers.

1. Iterative attacks beat single-step ones (PGD-20 <= FGSM).
2. White-box beats black-box (PGD <= Square, the gradient-free attack of AutoAttack).
3. Accuracy falls monotonically as eps grows.
4. An unbounded attack (eps = 1) reaches ~0%.
5. More steps and restarts do not keep lowering accuracy much (PGD-50 vs PGD-100 x 5 restarts).
6. The loss along gradient and random directions is smooth, and the gradient is informative
   (paper Sec. 6.3; :mod:`nuat.eval.surface`, with a plot).

Every attack batch is checked against its eps-ball and [0, 1] like in ``nuat eval``. A FLAG does
not prove gradient masking and a PASS does not prove robustness; they say where to look.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from nuat.attacks.square import square
from nuat.checkpoints import atomic_write_text
from nuat.eval.registry import Job, JobOutput, Settings, build_jobs, parse_attacks
from nuat.eval.runner import batch_seed, job_title, load_batch, score_batch
from nuat.eval.surface import plot_surface, smoothness, surface
from nuat.eval.targets import EvalTarget, check_image_size

#: tolerances in accuracy (fractions of the images)
TOL_ITERATIVE = 0.005   # PGD-20 may exceed FGSM by at most this
TOL_BLACK_BOX = 0.01    # Square may undercut the best white-box attack by at most this
TOL_MONOTONE = 0.005    # accuracy may rise by at most this when eps grows
MAX_UNBOUNDED = 0.01    # accuracy left by PGD-100 at eps = 1
TOL_STEPS = 0.02        # PGD-100 x 5 restarts may undercut PGD-50 by at most this
MAX_ZERO_GRADIENT = 0.05
MAX_GRADIENT_LOSES = 0.10
MAX_VARIATION = 3.0


@dataclass(frozen=True)
class SanityConfig:
    """eps: the threat model; n: first n test images; square_queries: Square's budget (AutoAttack
    uses 5000); eps_factors: multiples of eps for the monotonicity sweep (capped at 1);
    surface_images: clean-correct images for the smoothness numbers."""

    eps: float
    n: int = 500
    batch_size: int = 250
    seed: int = 0
    square_queries: int = 1000
    eps_factors: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
    surface_images: int = 100
    device: str = "cpu"
    progress: bool = True


@dataclass
class Check:
    name: str
    status: str
    numbers: dict[str, Any]
    rule: str


def _pgd_job(names: str, eps: float, n: int, restarts: int = 1) -> Job:
    """A PGD job (step eps/4, CE) for ``names`` like "pgd-20,pgd-100"."""
    settings = Settings(eps=eps, pgd_step=eps / 4, pgd_restarts=restarts)
    return build_jobs(parse_attacks(names, n), settings)[1]


def _square_job(eps: float, n: int, queries: int, seed: int) -> Job:
    run = lambda m, x, y, g: JobOutput(square(m, x, y, eps=eps, queries=queries, seed=seed))  # noqa: E731
    return Job(f"square@{n}", n, ["square"], ["square"], "square", {"square": f"Square ({queries} queries)"},
               {"square": "black-box"}, {"queries": queries}, run)


def measure(model: nn.Module, job: Job, data: Any, cfg: SanityConfig, clean: torch.Tensor | None, eps: float,
            tag: str = "") -> dict[str, torch.Tensor]:
    """Per-example robust flags (n,) of every output of ``job`` on the first ``cfg.n`` images."""
    device = torch.device(cfg.device)
    flags: dict[str, list[torch.Tensor]] = {o: [] for o in job.outputs}
    batches = math.ceil(cfg.n / cfg.batch_size)
    title = f"{job_title(job)}{tag}"
    bar_off = None if cfg.progress else True  # None: drawn on a terminal only
    for k in tqdm(range(batches), desc=title, unit="batch", disable=bar_off, leave=False):
        lo, hi = k * cfg.batch_size, min((k + 1) * cfg.batch_size, cfg.n)
        x, y = load_batch(data, lo, hi, device)
        ok = None if clean is None else clean[lo:hi].to(device)
        generator = torch.Generator(device=device).manual_seed(batch_seed(cfg.seed, job.key + tag, k))
        out, _, _ = score_batch(model, job, x, y, ok, generator, eps, where=f"{title}, images {lo}..{hi - 1}")
        for o in job.outputs:
            flags[o].append(out[o])
    return {o: torch.cat(v) for o, v in flags.items()}


def _acc(flags: torch.Tensor) -> float:
    return float(flags.float().mean()) if flags.numel() else 0.0


def _within(count: torch.Tensor | int, bound: torch.Tensor | int, tol: float, n: int) -> bool:
    """``count / n <= bound / n + tol``, decided exactly: robust counts (or flags, counted) and the
    tolerance as the decimal it is written as. On accuracies in floating point a gap of exactly
    the tolerance (5 of 500 images at 1%) fell either side of it by rounding."""
    as_int = lambda v: int(v.sum()) if isinstance(v, torch.Tensor) else int(v)  # noqa: E731
    return as_int(count) <= as_int(bound) + Fraction(str(tol)) * n


def run_checks(model: nn.Module, data: Any, cfg: SanityConfig) -> tuple[list[Check], dict[str, Any]]:
    """Run the six checks on the first ``cfg.n`` images. Returns (checks, extra) where extra holds
    the surface data for the plot."""
    eps, n = cfg.eps, cfg.n
    clean = measure(model, build_jobs(parse_attacks("clean", n), Settings(eps, eps))[0], data, cfg, None, eps)["clean"]
    fgsm_flags = measure(model, build_jobs(parse_attacks("fgsm", n), Settings(eps, eps))[1], data, cfg, clean, eps)["fgsm"]
    steps = measure(model, _pgd_job("pgd-10,pgd-20,pgd-50,pgd-100", eps, n), data, cfg, clean, eps)
    restarts = measure(model, _pgd_job("pgd-100", eps, n, restarts=5), data, cfg, clean, eps, tag=" x5 restarts")["pgd-100"]
    black = measure(model, _square_job(eps, n, cfg.square_queries, cfg.seed), data, cfg, clean, eps)["square"]
    sweep, sweep_counts = {}, []
    for factor in cfg.eps_factors:
        e = min(1.0, factor * eps)
        if e not in sweep:
            flags = measure(model, _pgd_job("pgd-20", e, n), data, cfg, clean, e, tag=f" eps {e:.4g}")["pgd-20"]
            sweep[e] = _acc(flags)
            sweep_counts.append(int(flags.sum()))
    unbounded_flags = measure(model, _pgd_job("pgd-100", 1.0, n), data, cfg, clean, 1.0, tag=" eps 1")["pgd-100"]
    unbounded = _acc(unbounded_flags)

    acc = {"clean": _acc(clean), "fgsm": _acc(fgsm_flags), **{k: _acc(v) for k, v in steps.items()},
           "pgd-100x5": _acc(restarts), "square": _acc(black)}
    white_flags = steps["pgd-100"] & restarts
    white = _acc(white_flags)
    checks = [
        Check("iterative beats single-step",
              "PASS" if _within(steps["pgd-20"], fgsm_flags, TOL_ITERATIVE, n) else "FLAG",
              {"fgsm": acc["fgsm"], "pgd-20": acc["pgd-20"]},
              f"PGD-20 accuracy <= FGSM accuracy + {TOL_ITERATIVE:.1%}"),
        Check("white-box beats black-box", "PASS" if _within(white_flags, black, TOL_BLACK_BOX, n) else "FLAG",
              {"white-box (PGD-100, 1 and 5 restarts)": white, "square": acc["square"],
               "square_only_breaks": int((white_flags & ~black).sum())},
              f"Square accuracy >= best white-box accuracy - {TOL_BLACK_BOX:.1%}"),
        Check("accuracy falls as eps grows",
              "PASS" if all(_within(b, a, TOL_MONOTONE, n) for a, b in zip(sweep_counts, sweep_counts[1:])) else "FLAG",
              {f"eps {e:.4g}": a for e, a in sweep.items()},
              f"PGD-20 (step eps/4) accuracy never rises by more than {TOL_MONOTONE:.1%} as eps grows"),
        Check("unbounded attack reaches ~0%", "PASS" if _within(unbounded_flags, 0, MAX_UNBOUNDED, n) else "FLAG",
              {"pgd-100 at eps 1": unbounded}, f"PGD-100 at eps = 1 leaves <= {MAX_UNBOUNDED:.0%}"),
        Check("more steps and restarts do not keep lowering accuracy",
              "PASS" if _within(steps["pgd-50"], white_flags, TOL_STEPS, n) else "FLAG",
              {k: acc[k] for k in ("pgd-10", "pgd-20", "pgd-50", "pgd-100", "pgd-100x5")} | {"worst of both": white},
              f"PGD-50 minus worst of PGD-100 and PGD-100 x 5 restarts <= {TOL_STEPS:.0%}"),
    ]
    smooth, extra = _smoothness(model, data, cfg, clean)
    checks.append(smooth)
    return checks, {"accuracy": acc, **extra}


def _smoothness(model: nn.Module, data: Any, cfg: SanityConfig, clean: torch.Tensor) -> tuple[Check, dict[str, Any]]:
    device = torch.device(cfg.device)
    idx = clean.nonzero().squeeze(1)[: cfg.surface_images]
    if idx.numel() == 0:
        return Check("loss is smooth along gradient and random directions", "FLAG", {"images": 0},
                     "no clean-correct image to look at"), {}
    x = data.get_batch(idx).to(device=device, dtype=torch.float32).div_(255.0)
    y = data.labels[idx].to(device)
    gen = torch.Generator(device=device).manual_seed(batch_seed(cfg.seed, "surface", 0))
    s = smoothness(model, x, y, eps=cfg.eps, generator=gen)
    ok = s.zero_gradient <= MAX_ZERO_GRADIENT and s.gradient_loses <= MAX_GRADIENT_LOSES and s.variation <= MAX_VARIATION
    check = Check("loss is smooth along gradient and random directions", "PASS" if ok else "FLAG",
                  {"images": int(idx.numel()), "zero_gradient": s.zero_gradient, "gradient_loses": s.gradient_loses,
                   "variation": s.variation},
                  f"zero gradients <= {MAX_ZERO_GRADIENT:.0%}; best of 8 random sign directions beats sign(gradient) "
                  f"at distance eps on <= {MAX_GRADIENT_LOSES:.0%}; median total variation / range <= {MAX_VARIATION:g}")
    ts, grid = surface(model, x[:1], y[:1], eps=cfg.eps, generator=gen)
    return check, {"smoothness": s, "surface": (ts, grid)}


def run_sanity(target: EvalTarget, data: Any, cfg: SanityConfig, out: str | Path, *, dataset: str,
               eps_text: str) -> dict[str, Any]:
    """Run the checks on ``target`` and write sanity.json, sanity.md and loss_surface.png into ``out``.

    ``data``: the test split at the model's input size (:func:`nuat.eval.targets.load_test_data`);
    raises :class:`UsageError` before any check runs if its images have another size.
    """
    from nuat.train.meta import provenance

    check_image_size(data, target)
    out = Path(out)
    checks, extra = run_checks(target.model, data, cfg)
    plot = None
    if "surface" in extra:
        try:
            ts, grid = extra["surface"]
            plot = plot_surface(out / "loss_surface.png", ts, grid, extra["smoothness"],
                                f"{target.name} ({target.model_name}), {dataset}, eps {eps_text}").name
        except ImportError:
            plot = None
    result = {
        "format": "nuat-sanity/1",
        "checkpoint": {"name": target.name, "path": str(target.path), "sha256": target.sha256,
                       "model": target.model_name,
                       "metadata": {k: v for k, v in target.metadata.items() if k not in ("format", "model_spec")}},
        "dataset": dataset, "n": cfg.n, "eps": cfg.eps, "eps_text": eps_text, "seed": cfg.seed,
        "square_queries": cfg.square_queries, "accuracy": extra["accuracy"],
        "checks": [asdict(c) for c in checks], "plot": plot,
        "verdict": "PASS" if all(c.status == "PASS" for c in checks) else "FLAG",
        "provenance": {**provenance(), "device": cfg.device},
    }
    text = json.dumps(result, indent=2) + "\n"
    atomic_write_text(out / "sanity.json", text)
    md = render_sanity(result)
    atomic_write_text(out / "sanity.md", md)
    return result


def _num(key: str, value: Any) -> str:
    if isinstance(value, float) and not key.startswith(("variation",)) and 0.0 <= value <= 1.0:
        return f"{key} {100 * value:.2f}%"
    return f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"


def render_sanity(result: dict[str, Any]) -> str:
    """The checks as a Markdown table with provenance."""
    ck, prov = result["checkpoint"], result["provenance"]
    meta = ck["metadata"]
    lines = [
        f"## Gradient-masking checks: `{ck['name']}` ({ck['model']}"
        + (f", method {meta['method']}" if "method" in meta else "") + f"): **{result['verdict']}**",
        "",
        f"- checkpoint: `{ck['path']}`, sha256 `{ck['sha256']}`",
        f"- data: {result['dataset']} test set, first {result['n']:,} images; eps {result['eps_text']} (L-inf); "
        f"seed {result['seed']}; clean accuracy {100 * result['accuracy']['clean']:.2f}%",
        f"- evaluated at commit `{prov['commit']}` with nuat {prov['nuat_version']} on {prov['machine']}",
        "- PGD here: step eps/4, uniform random start, CE loss; Square: "
        f"{result['square_queries']} queries (pyautoattack)",
        "",
        "| check | result | numbers | rule |",
        "|---|---|---|---|",
    ]
    for c in result["checks"]:
        numbers = ", ".join(_num(k, v) for k, v in c["numbers"].items())
        lines.append(f"| {c['name']} | **{c['status']}** | {numbers} | {c['rule']} |")
    if result["plot"]:
        lines += ["", f"![loss surface]({result['plot']})"]
    return "\n".join(lines) + "\n"
