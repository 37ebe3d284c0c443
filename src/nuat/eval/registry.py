"""Names accepted by ``nuat eval --attacks`` and the evaluation jobs they become.

``FAMILIES`` maps a family name to its pattern and its job builder (no if/elif chain). A token
is ``NAME`` or ``NAME@N`` (run that attack on the first N images only). All ``pgd-N`` of the
same N share ONE PGD run of the largest step count, read out after each requested count, as in
the published evaluation (7/20/50/100/500 steps of one run).

Every job runs on the clean-correct images of a batch (a misclassified clean image is not robust)
and returns one adversarial batch; the runner checks it against the eps-ball and [0, 1] before
anything counts.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import torch
from torch import nn

from nuat.attacks.autoattack import VERSIONS, run_autoattack
from nuat.attacks.fgsm import fgsm
from nuat.attacks.gama import gama_pgd
from nuat.attacks.ifgsm import ifgsm
from nuat.attacks.nuclear import nuclear
from nuat.attacks.pgd import LOSSES as PGD_LOSSES
from nuat.attacks.pgd import pgd_trace
from nuat.attacks.targeted import targeted_pgd
from nuat.errors import UsageError

DEFAULT_ATTACKS = "clean,fgsm,pgd-20,pgd-100,gama-pgd-100,aa"
AA_LABELS = {"apgd-ce": "APGD-CE", "apgd-t": "APGD-T", "fab-t": "FAB-T", "square": "Square",
             "apgd-dlr": "APGD-DLR", "fab": "FAB"}


@dataclass(frozen=True)
class Settings:
    """Attack parameters shared by the jobs (pixels in [0, 1]).

    pgd_step: PGD step in pixels (``nuat eval`` default eps/10, see docs/evaluation.md);
    pgd_restarts: independent random starts per PGD run; pgd_loss: "ce" or "margin";
    targets: target classes of targeted-pgd (None: all); nuclear_lam: weight of the nuclear
    term of the NuAT attack; seed: evaluation seed (AutoAttack gets it as its own seed);
    gama_reference: where GAMA's guide takes its reference softmax ("start" or "clean").
    """

    eps: float
    pgd_step: float
    pgd_restarts: int = 1
    pgd_loss: str = "ce"
    targets: int | None = 9
    nuclear_lam: float = 4.0
    seed: int = 0
    gama_reference: str = "start"


@dataclass
class JobOutput:
    """One job's result on a batch of B clean-correct images.

    adversarial: (B, C, H, W), the batch the runner checks and scores (the ``final`` output).
    readouts: output name -> (B,) bool robust, for the job's other outputs (earlier PGD step
        counts, AutoAttack components); an example the checked batch does not fool stays robust.
    seconds: output name -> seconds it took to get there (default: the whole batch).
    flags: warnings to surface (e.g. AutoAttack's checks).
    """

    adversarial: torch.Tensor
    readouts: dict[str, torch.Tensor] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


AttackRun = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], JobOutput]


@dataclass
class Job:
    """A unit of evaluation with its own progress bar and resumable state.

    key: state key, unique per evaluation; n: images (the first n of the test set);
    rows: outputs shown as table rows and counted in the worst case; outputs: all per-example
    results stored (rows plus components); final: the output scored on ``adversarial``;
    params: everything that determines the numbers (a stored job with other params is refused).
    """

    key: str
    n: int
    rows: list[str]
    outputs: list[str]
    final: str
    labels: dict[str, str]
    details: dict[str, str]
    params: dict[str, Any]
    run: AttackRun
    components: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    """One ``--attacks`` token: canonical name, family, regex groups, image count."""

    name: str
    family: str
    steps: int | None
    n: int


@dataclass(frozen=True)
class Family:
    pattern: str
    example: str
    help: str
    build: Callable[[list[Request], Settings], list[Job]]


def _fmt(x: float) -> str:
    """A pixel value as papers write it: ``0.01`` for round decimals, ``2/255`` for multiples of 1/255."""
    if abs(x * 1000 - round(x * 1000)) < 1e-6:
        return f"{x:.4g}"
    k = x * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{x:.4g}"


def _single(req: Request, label: str, detail: str, params: dict[str, Any], run: AttackRun) -> Job:
    key = f"{req.name}@{req.n}"
    return Job(key, req.n, [req.name], [req.name], req.name, {req.name: label}, {req.name: detail},
               {"attack": req.name, "n": req.n, **params}, run)


def _clean(reqs: list[Request], s: Settings) -> list[Job]:
    return [_single(r, "clean", "no attack", {}, lambda m, x, y, g: JobOutput(x)) for r in reqs]


def _fgsm(reqs: list[Request], s: Settings) -> list[Job]:
    return [_single(r, "FGSM", "one signed step of size eps from the clean image", {"eps": s.eps},
                    lambda m, x, y, g: JobOutput(fgsm(m, x, y, eps=s.eps))) for r in reqs]


def _ifgsm(reqs: list[Request], s: Settings) -> list[Job]:
    def job(r: Request) -> Job:
        steps = r.steps or 7
        return _single(r, f"I-FGSM-{steps}", f"{steps} steps of eps/{steps}, no random start",
                       {"eps": s.eps, "steps": steps},
                       lambda m, x, y, g: JobOutput(ifgsm(m, x, y, eps=s.eps, steps=steps)))
    return [job(r) for r in reqs]


def _pgd(reqs: list[Request], s: Settings) -> list[Job]:
    jobs = []
    for n in sorted({r.n for r in reqs}, reverse=True):
        group = sorted((r for r in reqs if r.n == n), key=lambda r: r.steps or 0)
        counts = [r.steps or 0 for r in group]
        top = counts[-1]
        names = {c: r.name for c, r in zip(counts, group)}
        restarts = f", {s.pgd_restarts} restarts" if s.pgd_restarts > 1 else ""
        detail = (f"step {_fmt(s.pgd_step)}, uniform random start, {s.pgd_loss.upper()} loss{restarts}"
                  + (f"; read out of one {top}-step run" if len(counts) > 1 else ""))

        def run(m: nn.Module, x: torch.Tensor, y: torch.Tensor, g: torch.Generator,
                counts: list[int] = counts, names: dict[int, str] = names, top: int = top) -> JobOutput:
            robust = {c: torch.ones(y.shape[0], dtype=torch.bool, device=x.device) for c in counts}
            seconds = dict.fromkeys(counts, 0.0)
            best, alive = x.detach().clone(), torch.ones(y.shape[0], dtype=torch.bool, device=x.device)
            for _ in range(s.pgd_restarts):
                times: dict[int, float] = {}
                x_adv, ro = pgd_trace(m, x, y, eps=s.eps, steps=top, step_size=s.pgd_step, readout=counts,
                                      loss=s.pgd_loss, generator=g, readout_seconds=times)
                for c in counts:
                    robust[c] &= ro[c]
                    seconds[c] += times[c]
                newly = alive & ~ro[top]
                best[newly] = x_adv[newly]
                alive &= ro[top]
                best[alive] = x_adv[alive]
            return JobOutput(best, {names[c]: robust[c] for c in counts if c != top},
                             {names[c]: seconds[c] for c in counts if c != top})

        rows = [names[c] for c in counts]
        jobs.append(Job(f"pgd@{n}", n, rows, rows, names[top], {nm: f"PGD-{c}" for c, nm in names.items()},
                        dict.fromkeys(rows, detail),
                        {"attack": "pgd", "n": n, "eps": s.eps, "steps": counts, "step_size": s.pgd_step,
                         "restarts": s.pgd_restarts, "loss": s.pgd_loss}, run))
    return jobs


def _gama(reqs: list[Request], s: Settings) -> list[Job]:
    def job(r: Request) -> Job:
        steps = r.steps or 100
        # published schedule for 100 steps; other step counts scale it proportionally
        drops, guide = (round(0.6 * steps), round(0.85 * steps)), round(0.25 * steps)
        where = "the start point" if s.gama_reference == "start" else "the clean image"
        detail = (f"{steps} steps from 2*eps, /10 at steps {drops[0]} and {drops[1]}, +-eps sign start, "
                  f"softmax margin + 50->0 (over {guide} steps) squared-L2 guide to {where}")
        return _single(r, f"GAMA-PGD-{steps}", detail,
                       {"eps": s.eps, "steps": steps, "reference": s.gama_reference},
                       lambda m, x, y, g: JobOutput(gama_pgd(m, x, y, eps=s.eps, steps=steps, drops=drops,
                                                             guide_steps=guide, reference=s.gama_reference,
                                                             generator=g)))
    return [job(r) for r in reqs]


def _nuclear(reqs: list[Request], s: Settings) -> list[Job]:
    def job(r: Request) -> Job:
        steps = r.steps or 1
        detail = (f"{steps} step{'s' if steps > 1 else ''} of size eps from eps/2 Bernoulli noise, "
                  f"lambda {s.nuclear_lam:g} (paper Eq. 1)")
        return _single(r, "NuAT attack" + (f" ({steps} steps)" if steps > 1 else ""), detail,
                       {"eps": s.eps, "steps": steps, "lam": s.nuclear_lam},
                       lambda m, x, y, g: JobOutput(nuclear(m, x, y, eps=s.eps, lam=s.nuclear_lam, steps=steps,
                                                            generator=g)))
    return [job(r) for r in reqs]


def _targeted(reqs: list[Request], s: Settings) -> list[Job]:
    def job(r: Request) -> Job:
        steps = r.steps or 100
        which = "all" if s.targets is None else f"top-{s.targets}"
        return _single(r, f"targeted PGD-{steps} ({which})",
                       f"{steps} steps of {_fmt(s.pgd_step)} per target, {which} wrong classes, margin z_t - z_y",
                       {"eps": s.eps, "steps": steps, "step_size": s.pgd_step, "targets": s.targets},
                       lambda m, x, y, g: JobOutput(targeted_pgd(m, x, y, eps=s.eps, steps=steps,
                                                                 step_size=s.pgd_step, targets=s.targets,
                                                                 generator=g)))
    return [job(r) for r in reqs]


def _autoattack(version: str, label: str) -> Callable[[list[Request], Settings], list[Job]]:
    def build(reqs: list[Request], s: Settings) -> list[Job]:
        jobs = []
        for r in reqs:
            comps = [f"{r.name}/{c}" for c in VERSIONS[version]]

            def run(m: nn.Module, x: torch.Tensor, y: torch.Tensor, g: torch.Generator, r: Request = r) -> JobOutput:
                res = run_autoattack(m, x, y, eps=s.eps, version=version, seed=s.seed, check_square=False)
                readouts = {f"{r.name}/{c}": f for c, f in res.robust_after.items()}
                total, seconds = 0.0, {}
                for c in VERSIONS[version]:
                    total += res.seconds[c]
                    seconds[f"{r.name}/{c}"] = total
                return JobOutput(res.adversarial, readouts, seconds, res.flags)

            detail = " -> ".join(AA_LABELS[c] for c in VERSIONS[version]) + " (pyautoattack)"
            jobs.append(Job(f"{r.name}@{r.n}", r.n, [r.name], [r.name, *comps], r.name, {r.name: label},
                            {r.name: detail}, {"attack": r.name, "n": r.n, "eps": s.eps, "version": version,
                                               "seed": s.seed}, run, comps))
        return jobs
    return build


FAMILIES: dict[str, Family] = {
    "clean": Family(r"clean", "clean", "no attack", _clean),
    "fgsm": Family(r"fgsm", "fgsm", "FGSM, one step of size eps", _fgsm),
    "ifgsm": Family(r"ifgsm-(\d+)", "ifgsm-7", "I-FGSM, N steps of eps/N, no random start", _ifgsm),
    "pgd": Family(r"pgd-(\d+)", "pgd-100", "PGD, N steps (all pgd-N share one run)", _pgd),
    "gama-pgd": Family(r"gama-pgd-(\d+)", "gama-pgd-100", "GAMA-PGD, N steps", _gama),
    "nuclear": Family(r"nuclear(?:-(\d+))?", "nuclear", "the NuAT attack (nuclear-2: two steps)", _nuclear),
    "targeted-pgd": Family(r"targeted-pgd(?:-(\d+))?", "targeted-pgd-100", "targeted PGD over the top-k classes",
                           _targeted),
    "aa": Family(r"aa", "aa", "AutoAttack, standard version", _autoattack("standard", "AutoAttack (standard)")),
    "aa-v1": Family(r"aa-v1", "aa-v1", "AutoAttack, original version (v1)", _autoattack("v1", "AutoAttack v1 (original)")),
}


def attack_choices() -> list[str]:
    """Example spellings of every family, e.g. ``['clean', 'fgsm', 'ifgsm-7', ...]``."""
    return [f.example for f in FAMILIES.values()]


def parse_attacks(text: str, n: int) -> list[Request]:
    """Parse ``"clean,pgd-20,aa@1000"`` into requests (each on at most ``n`` images).

    Raises :class:`UsageError` for unknown names (with the choices and a suggestion), repeats,
    step counts < 1 and bad ``@N``.
    """
    requests: list[Request] = []
    for token in (t.strip().lower() for t in text.split(",")):
        if not token:  # "clean,,fgsm" or a trailing comma: a name was probably lost, so say so
            raise UsageError(f"--attacks {text!r} has an empty entry; give names separated by single commas, "
                             "e.g. clean,pgd-20")
        name, at, count = token.partition("@")
        name, count = name.strip(), count.strip()  # "fgsm @ 3" like "clean, fgsm": spaces around parts
        size = n
        if at:  # "clean@" too: not a silent "all images"
            if not count.isdigit() or int(count) < 1:
                raise UsageError(f"attack {token!r}: the image count after @ must be a positive integer")
            size = min(n, int(count))
        for family, spec in FAMILIES.items():
            match = re.fullmatch(spec.pattern, name)
            if match:
                steps = int(match.group(1)) if match.groups() and match.group(1) else None
                if steps is not None and steps < 1:
                    raise UsageError(f"attack {name!r}: the step count must be at least 1")
                if steps is not None:  # one spelling per attack: pgd-020 is pgd-20
                    name = name[:match.start(1)] + str(steps) + name[match.end(1):]
                break
        else:
            if name in FAMILIES:  # a family name that needs its step count: pgd, ifgsm, gama-pgd
                example = FAMILIES[name].example
                raise UsageError(f"attack {name!r} needs a step count: {name}-N, e.g. {example}")
            hyphen = re.fullmatch(r"([a-z-]*[a-z])(\d+)", name)  # "pgd20": the hyphen forgotten
            hyphenated = f"{hyphen.group(1)}-{hyphen.group(2)}" if hyphen else None
            if hyphenated and any(re.fullmatch(f.pattern, hyphenated) for f in FAMILIES.values()):
                hint = f" (did you mean {hyphenated!r}?)"
            else:
                spelled = {**{k: f.example for k, f in FAMILIES.items()}, **{c: c for c in attack_choices()}}
                close = difflib.get_close_matches(name, list(spelled), n=1, cutoff=0.5)
                hint = f" (did you mean {spelled[close[0]]!r}?)" if close else ""  # a full spelling, never 'pgd'
            raise UsageError(f"unknown attack {name!r}; choose from: {', '.join(attack_choices())} "
                             f"(the numbers are step counts, any N >= 1: pgd-N, ifgsm-N, gama-pgd-N, "
                             f"targeted-pgd-N, nuclear-N; NAME@N = first N images only){hint}")
        if any(r.name == name for r in requests):
            raise UsageError(f"attack {name!r} is listed twice")
        requests.append(Request(name, family, steps, size))
    if not requests:
        raise UsageError("--attacks is empty; choose from: " + ", ".join(attack_choices()))
    return requests


def build_jobs(requests: list[Request], settings: Settings) -> list[Job]:
    """Jobs for ``requests``, clean first (always run: the attacks only attack clean-correct
    images), then in the order the families first appear."""
    n_max = max(r.n for r in requests)
    clean = [r for r in requests if r.family == "clean"]
    others = [r for r in requests if r.family != "clean"]
    jobs = _clean([Request("clean", "clean", None, n_max)], settings)
    if clean and clean[0].n != n_max:
        raise UsageError("clean runs on every image the attacks use; drop its @N")
    for family in dict.fromkeys(r.family for r in others):
        jobs.extend(FAMILIES[family].build([r for r in others if r.family == family], settings))
    return jobs


def parse_step(text: str, eps: float) -> float:
    """A PGD step size in pixels of [0, 1] images, from ``--pgd-step``: ``"eps/4"``, ``"eps"``,
    ``"eps*0.5"``, ``"0.01"`` or ``"2/255"``.

    Raises :class:`UsageError` (one line naming the value) unless the step lies in (0, 1]: a zero
    step never leaves the start and a negative one walks *down* the loss, both of which would
    report an inflated robust accuracy; a step above 1 exceeds the whole [0, 1] pixel range.
    """
    t = text.strip().replace(" ", "").lower()
    hint = "use e.g. eps/4, eps/10, 0.01 or 2/255"
    try:
        if t == "eps":
            step = eps
        elif t.startswith("eps/"):
            step = eps / float(Fraction(t[4:]))
        elif t.startswith("eps*"):
            step = eps * float(Fraction(t[4:]))
        else:
            step = float(Fraction(t))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise UsageError(f"--pgd-step {text!r} is not understood; {hint}") from None
    if not 0.0 < step <= 1.0:
        raise UsageError(f"--pgd-step {text!r} gives step {step:.6g}; it must lie in (0, 1] "
                         f"(pixels in [0, 1]); {hint}")
    return step


def check_loss(loss: str) -> str:
    if loss not in PGD_LOSSES:
        raise UsageError(f"unknown PGD loss {loss!r}; choose one of: {', '.join(PGD_LOSSES)}")
    return loss
