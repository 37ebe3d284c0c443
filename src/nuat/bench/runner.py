"""``nuat bench``: time training methods, and the passes they are made of, in one process.

Every timed iteration is the training loop's own step (``nuat.train.loop._step``: the method's
``loss``, ``zero_grad``, ``backward``, the optimiser step, ``after_step``, the weight averages and
the on-device stats) on a batch from the loop's own ``BatchLoader``, built by the loop's
``build_run``. The clock is read on the host at trial boundaries only (with a device
synchronisation there on CUDA). Trials of all methods, variants and the pass probes are
interleaved round by round (the order rotates each round), so a ratio such as "NuAT / ERM" is
taken within a round and load changes on a shared machine hit both sides alike; the summaries
are medians with quartiles over rounds.

The floor of a method is its pass counts (``StepOutput.passes``, per example) times the measured
pass times: forward ``f``, input-only backward ``(fwd + input bwd) - f``, full backward
``(fwd + full bwd) - f``, plus one optimiser step.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import os
import platform
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from nuat.attacks.common import input_gradient
from nuat.bench.host_reads import per_iteration, record_host_reads
from nuat.bench.profile import profile_floor, profile_iterations
from nuat.bench.timing import (CLOCKS, PASS_NAMES, PeakMemory, host_counters, host_sync_sites, load_average,
                               pass_floor, summarize, synchronize, time_block)
from nuat.bench.variants import Variant, parse_variant
from nuat.data import BatchLoader, get_dataset_spec
from nuat.errors import UsageError
from nuat.methods import get_method
from nuat.models import build_model
from nuat.models.registry import check_model_name
from nuat.projections import parse_eps
from nuat.train import fastpath
from nuat.train.config import TrainConfig
from nuat.train.device import resolve_device
from nuat.train.loop import Run, _step, build_run
from nuat.train.meta import git_commit, machine
from nuat.train.progress import EpochProgress
from nuat.train.recipes import recipe_for

#: untimed iterations per method under CUDA's sync debug mode and the host-read recorder
#: (--check-syncs): an even and an odd batch index, since NuAT's attack alternates
SYNC_CHECK_ITERATIONS = 2


@dataclass
class BenchConfig:
    """What ``nuat bench`` times. ``steps`` iterations per trial, ``trials`` rounds, ``warmup``
    untimed iterations per method (and pass probe) first. ``None`` means the data set's recipe."""

    methods: list[str]
    dataset: str = "mnist"
    model: str | None = None
    batch_size: int | None = None
    eps: str | float | None = None
    steps: int = 20
    trials: int = 10
    warmup: int = 5
    variants: list[Variant] = field(default_factory=lambda: [parse_variant("fp32")])
    data_dir: str | None = None
    device: str = "auto"
    seed: int = 0
    threads: int | None = None
    check_syncs: bool = False
    #: untimed iterations per method under torch.profiler after the timing (0: none; --profile)
    profile: int = 0
    #: the clock of the summaries: "wall" (default) or "cpu" (process CPU time; CPU devices only,
    #: for shared machines). Both are recorded.
    clock: str = "wall"

    def validate(self) -> "BenchConfig":
        if not self.methods:
            raise UsageError("--methods is empty; name at least one method, e.g. erm,nuat")
        if len(set(self.methods)) != len(self.methods):
            raise UsageError(f"--methods lists a method twice: {','.join(self.methods)}")
        for name in self.methods:
            get_method(name)  # raises UsageError with a suggestion
        for key in ("steps", "trials"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"--{key} {value!r} is invalid; it must be a positive integer")
        if not isinstance(self.profile, int) or self.profile < 0:
            raise UsageError(f"--profile {self.profile!r} is invalid; it must be an integer >= 0")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise UsageError(f"--warmup {self.warmup!r} is invalid; it must be an integer >= 0")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"--batch-size {self.batch_size} is invalid; it must be positive")
        cores = os.cpu_count() or 1
        if self.threads is not None and not 1 <= self.threads <= cores:
            # more threads than cores only slows a benchmark down; far more crashed torch (10,000: a
            # segmentation fault; beyond 2^63: an overflow traceback)
            raise UsageError(f"--threads {self.threads} is invalid; give 1 to {cores} (this machine's cores)")
        if not self.variants:
            raise UsageError("--variants is empty")
        get_dataset_spec(self.dataset)
        if self.model is not None:  # an empty or unknown name is refused, not replaced by the recipe's
            check_model_name(self.model)
        if self.eps is not None:
            parse_eps(self.eps, "--eps")
        if self.clock not in CLOCKS:
            raise UsageError(f"--clock {self.clock!r} is invalid; choose one of: {', '.join(CLOCKS)}")
        device = resolve_device(self.device)  # an unknown or unavailable --device fails here, before any work
        if self.clock == "cpu" and device.type != "cpu":
            raise UsageError("--clock cpu measures CPU time; on a GPU use --clock wall")
        return self


@dataclass
class _Timed:
    """One (method, variant) run under test and what was measured on it."""

    method: str
    variant: Variant
    run: Run
    lam: float
    batches: Iterator[tuple[int, torch.Tensor, torch.Tensor]]
    progress: EpochProgress = field(default_factory=EpochProgress)
    seconds: list[float] = field(default_factory=list)  # per trial, the configured clock
    clocks: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in CLOCKS})
    peak: dict[str, int] | None = None
    # over all timed iterations (getrusage around each timed block; None where there is none)
    minor_faults: int | None = None
    system_seconds: float | None = None
    host_syncs: list[str] | None = None  # calling line of each synchronisation over
    # SYNC_CHECK_ITERATIONS untimed iterations (--check-syncs, CUDA; nuat.bench.timing.host_sync_sites)
    host_reads: dict[str, float] | None = None  # --check-syncs, any device: per iteration, by site
    profile: dict[str, Any] | None = None  # --profile: nuat.bench.profile.profile_iterations


def _full_batches(loader: BatchLoader) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Endless (batch index, x, y) over epochs; incomplete final batches are skipped so that
    every timed iteration has the same batch size."""
    while True:
        for index, (x, y) in enumerate(loader):
            if y.shape[0] == loader.batch_size:
                yield index, x, y


def _train_config(cfg: BenchConfig, method: str, variant: Variant, epochs: int, out: str) -> TrainConfig:
    spec = get_dataset_spec(cfg.dataset)
    recipe = recipe_for(spec.name)
    entry = get_method(method)
    hparams: dict[str, Any] = {}
    if variant.group_size is not None and "nuclear_group_size" in entry.hparams:
        hparams["nuclear_group_size"] = variant.group_size
    return TrainConfig(
        dataset=spec.name, model=cfg.model or recipe.get("model", "resnet18"), method=method,
        eps=parse_eps(cfg.eps if cfg.eps is not None else recipe.get("eps", spec.eps)), epochs=epochs,
        batch_size=cfg.batch_size or recipe.get("batch_size", 64), lr=recipe.get("lr", 0.1), seed=cfg.seed,
        data_dir=cfg.data_dir, out=out, **entry.defaults.train_fields(), method_hparams=hparams, device=cfg.device,
        progress=False, final_eval=0, amp=variant.amp, channels_last=variant.channels_last, compile=variant.compile,
        compile_mode=variant.compile_mode, nuclear_backend=variant.nuclear_backend,
    ).validate()


def _build(cfg: BenchConfig, method: str, variant: Variant, out: str) -> _Timed:
    needed = cfg.warmup + cfg.steps * cfg.trials
    probe = _train_config(cfg, method, variant, 2, out)
    run = build_run(probe)
    train_size = len(run.train_loader.data)
    if train_size < run.cfg.batch_size:  # no full batch: _full_batches would never yield one
        raise UsageError(f"--batch-size {run.cfg.batch_size} is larger than the {run.cfg.dataset} training set "
                         f"({train_size} images after the validation split); use at most {train_size}")
    per_epoch = max(len(run.train_loader) - 1, 1)
    # enough epochs that the LR schedule is still running at the end; epoch 1 (not 0) is timed so
    # methods that behave differently in their first epoch (NuAT2-WA's fast average) take their
    # steady-state path
    run.cfg.epochs = max(2, math.ceil(needed / per_epoch) + 1)
    run.iteration = per_epoch  # as if the first epoch were done
    return _Timed(method, variant, run, lam=run.cfg.lam_max, batches=_full_batches(run.train_loader))


def _iterate(t: _Timed, steps: int) -> None:
    for _ in range(steps):
        index, x, y = next(t.batches)
        _step(t.run, 1, t.lam, index, x, y, t.progress)


class _PassProbe:
    """Forward / forward + input backward / forward + full backward / optimiser step, on one fixed
    batch, with the same model, variant switches and loss (cross-entropy) as the timed runs."""

    def __init__(self, cfg: BenchConfig, variant: Variant, template: _Timed) -> None:
        run = template.run
        data = run.train_loader.data
        c, h, _ = data.image_shape
        torch.manual_seed(cfg.seed)
        self.model = build_model(run.cfg.model, num_classes=data.num_classes, in_channels=c,
                                 image_size=h).to(run.device)
        self.model = fastpath.prepare_model(self.model, channels_last=variant.channels_last)
        self.step_model = fastpath.step_model(self.model, compile=variant.compile, mode=variant.compile_mode)
        loader = BatchLoader(data, run.cfg.batch_size, device=run.device)
        x, self.y = next(iter(loader))
        self.x = fastpath.prepare_input(x, channels_last=variant.channels_last)
        self.device, self.amp = run.device, variant.amp
        # lr 0: the probe's weights stay put, the step does the same arithmetic
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.0, momentum=run.cfg.momentum,
                                         weight_decay=run.cfg.weight_decay)
        self.variant = variant
        self.seconds: dict[str, list[float]] = {name: [] for name in PASS_NAMES}
        self.clocks: dict[str, dict[str, list[float]]] = {c: {name: [] for name in PASS_NAMES} for c in CLOCKS}
        self.clock = cfg.clock

    def _ce(self, logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, self.y)

    def forward(self) -> None:
        with fastpath.autocast(self.device, self.amp):
            self._ce(self.step_model(self.x))

    def forward_input_backward(self) -> None:
        with fastpath.autocast(self.device, self.amp):
            input_gradient(self.step_model, self.x, self._ce)

    def forward_full_backward(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with fastpath.autocast(self.device, self.amp):
            loss = self._ce(self.step_model(self.x))
        loss.backward()

    def optimizer_step(self) -> None:
        self.optimizer.step()

    def _passes(self) -> Iterator[tuple[str, Callable[[], None]]]:
        """Each pass with the model in its mode: attacks (the input backward) run in eval mode."""
        for name in PASS_NAMES:
            self.step_model.train(name != "forward_input_backward")
            timed_pass = getattr(self, name)
            if self.variant.compile_mode == "reduce-overhead":  # other variants time the bare pass, as before
                timed_pass = functools.update_wrapper(functools.partial(self._marked, timed_pass), timed_pass)
            yield name, timed_pass
        self.step_model.train()

    def _marked(self, timed_pass: Callable[[], None]) -> None:
        """A pass as a step of its own (``reduce-overhead``'s CUDA graphs: fastpath.begin_step)."""
        fastpath.begin_step(self.variant.compile, self.variant.compile_mode)
        timed_pass()

    def measure(self, steps: int, record: bool = True) -> None:
        for name, fn in self._passes():
            pair = dict(zip(CLOCKS, time_block(fn, steps, self.device)))
            if record:
                self.seconds[name].append(pair[self.clock])
                for clock, value in pair.items():
                    self.clocks[clock][name].append(value)

    def profile(self, iterations: int) -> dict[str, dict[str, Any]]:
        """``profile_iterations`` of each pass (``--profile``), by pass name."""
        return {name: profile_iterations(lambda f=fn: [f() for _ in range(iterations)], iterations, self.device)
                for name, fn in self._passes()}


def run_bench(cfg: BenchConfig, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time every method under every variant; returns the JSON-ready result (see docs/speed.md)."""
    cfg.validate()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if any(v.amp == "bf16" for v in cfg.variants) and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError("this GPU does not support bfloat16; drop the bf16 variants")
    if any(v.compile for v in cfg.variants):
        # one process compiles the same forward for many runs, modes and variants: do not let
        # dynamo's default limit of 8 graphs per function fall back to eager silently
        import torch._dynamo.config as dynamo_config

        dynamo_config.recompile_limit = max(getattr(dynamo_config, "recompile_limit", 8), 64)
    load_before = load_average()
    started = _dt.datetime.now(_dt.timezone.utc)
    timed: list[_Timed] = []
    probes: dict[str, _PassProbe] = {}
    with tempfile.TemporaryDirectory(prefix="nuat-bench-") as tmp:
        for variant in cfg.variants:
            for method in cfg.methods:
                log(f"bench: building {method} ({variant.name})")
                timed.append(_build(cfg, method, variant, tmp))
            probes[variant.name] = _PassProbe(cfg, variant, timed[-1])
        first = timed[0].run
        log(f"bench: {cfg.dataset}, {first.cfg.model}, batch {first.cfg.batch_size}, device {device}, "
            f"torch threads {torch.get_num_threads()}; warm-up {cfg.warmup}, {cfg.trials} trials x {cfg.steps} steps")
        for t in timed:
            _iterate(t, cfg.warmup)
        for probe in probes.values():
            probe.measure(max(cfg.warmup, 1), record=False)
        memory = PeakMemory(device)
        units: list[Any] = [*probes.values(), *timed]
        for trial in range(cfg.trials):
            shift = trial % len(units)
            for unit in units[shift:] + units[:shift]:
                if isinstance(unit, _PassProbe):
                    unit.measure(cfg.steps)
                    continue
                before = host_counters()
                pair = dict(zip(CLOCKS, time_block(lambda u=unit: _iterate(u, 1), cfg.steps, device)))
                _count_host(unit, before, host_counters())
                unit.seconds.append(pair[cfg.clock])
                for clock, value in pair.items():
                    unit.clocks[clock].append(value)
            log(f"bench: trial {trial + 1}/{cfg.trials}: " + ", ".join(
                f"{t.method}{'' if len(cfg.variants) == 1 else '/' + t.variant.name} {1e3 * t.seconds[-1]:.1f} ms"
                for t in timed))
        for t in timed:  # memory: one more (untimed) iteration each, from a released heap / reset peak
            memory.reset()
            _iterate(t, 1)
            t.peak = memory.peak()
        # profiles before the host-read check: once a compiled forward has run under that check's
        # TorchDispatchMode, torch.compile runs it eagerly from then on (seen on CPU and CUDA with
        # torch 2.11-2.13), and the compiled variants' profiles would describe the eager step
        if cfg.profile:
            for t in timed:
                t.profile = profile_iterations(lambda u=t: _iterate(u, cfg.profile), cfg.profile, device)
        pass_profiles = {name: probe.profile(cfg.profile) for name, probe in probes.items()} if cfg.profile else {}
        if cfg.check_syncs:
            for t in timed:
                t.host_syncs = host_sync_sites(lambda u=t: _iterate(u, SYNC_CHECK_ITERATIONS), device)
                reads = record_host_reads(lambda u=t: _iterate(u, SYNC_CHECK_ITERATIONS))
                t.host_reads = per_iteration(reads, SYNC_CHECK_ITERATIONS)
        synchronize(device)
    return _result(cfg, device, timed, probes, started, load_before, memory.kind, pass_profiles)


def _count_host(t: _Timed, before: tuple[int, float] | None, after: tuple[int, float] | None) -> None:
    """Add one timed block's page faults and system time to ``t`` (read outside the clock's block)."""
    if before is None or after is None:  # no getrusage on this OS: the fields stay None
        return
    t.minor_faults = (t.minor_faults or 0) + after[0] - before[0]
    t.system_seconds = (t.system_seconds or 0.0) + after[1] - before[1]


def _per_round(a: list[float], b: list[float], fn: Callable[[float, float], float]) -> list[float]:
    return [fn(x, y) for x, y in zip(a, b)]


def _floor_rounds(passes: list[float], probe: _PassProbe) -> list[float]:
    """Per-round floor (:func:`nuat.bench.timing.pass_floor` of each round's pass times)."""
    s = probe.seconds
    return [pass_floor(passes, dict(zip(PASS_NAMES, times))) for times in zip(*(s[name] for name in PASS_NAMES))]


def _result(cfg: BenchConfig, device: torch.device, timed: list[_Timed], probes: dict[str, _PassProbe],
            started: _dt.datetime, load_before: list[float] | None, memory_kind: str,
            pass_profiles: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    first = timed[0].run.cfg
    passes_out: dict[str, Any] = {}
    for name, probe in probes.items():
        s = probe.seconds
        f = s["forward"]
        b_in = _per_round(s["forward_input_backward"], f, lambda fi, f_: (fi - f_) / f_)
        b_full = _per_round(s["forward_full_backward"], f, lambda ff, f_: (ff - f_) / f_)
        passes_out[name] = {
            **{k: summarize(v).to_dict() for k, v in s.items()},
            "input_backward_over_forward": summarize(b_in).to_dict(),
            "full_backward_over_forward": summarize(b_full).to_dict(),
            "seconds": {k: list(v) for k, v in s.items()},
            **{f"seconds_{clock}": {k: list(v) for k, v in values.items()} for clock, values in probe.clocks.items()},
        }
        if name in pass_profiles:
            passes_out[name]["profile"] = pass_profiles[name]
    by_key = {(t.method, t.variant.name): t for t in timed}
    methods_out = []
    for t in timed:
        n = max(t.progress.sums["n"].item() if "n" in t.progress.sums else 0, 1)
        passes = [p / n for p in t.progress.passes]
        floor = _floor_rounds(passes, probes[t.variant.name])
        entry: dict[str, Any] = {
            "method": t.method, "variant": t.variant.name,
            "passes_per_example": passes,
            "seconds_per_iteration": summarize(t.seconds).to_dict(),
            # per wall second whatever the summaries' clock: CPU time sums the threads
            "images_per_s": t.run.cfg.batch_size / summarize(t.clocks["wall"]).median,
            "floor_seconds": summarize(floor).to_dict(),
            "measured_over_floor": summarize(_per_round(t.seconds, floor, lambda a, b: a / b)).to_dict(),
            "peak_memory": t.peak, "loss_finite": t.progress.loss_is_finite(),
            "iterations_timed": cfg.steps * len(t.seconds), "seconds": list(t.seconds),
            **{f"seconds_{clock}": list(values) for clock, values in t.clocks.items()},
            **{f"seconds_per_iteration_{clock}": summarize(values).to_dict() for clock, values in t.clocks.items()},
        }
        for ref in ("erm", "nuat"):
            other = by_key.get((ref, t.variant.name))
            if other is not None:
                entry[f"relative_to_{ref}"] = summarize(
                    _per_round(t.seconds, other.seconds, lambda a, b: a / b)).to_dict()
                if ref == "erm":
                    floor_erm = _floor_rounds([1.0, 0.0, 1.0], probes[t.variant.name])
                    entry["floor_relative_to_erm"] = summarize(
                        _per_round(floor, floor_erm, lambda a, b: a / b)).to_dict()
        base = by_key.get((t.method, "fp32"))
        if base is not None and base is not t:
            entry["speedup_over_fp32"] = summarize(_per_round(base.seconds, t.seconds, lambda a, b: a / b)).to_dict()
        if t.minor_faults is not None and t.system_seconds is not None:
            iterations = max(cfg.steps * len(t.seconds), 1)
            entry["minor_faults_per_iteration"] = t.minor_faults / iterations
            entry["system_seconds_per_iteration"] = t.system_seconds / iterations
        if t.host_syncs is not None:
            entry["host_syncs_per_iteration"] = len(t.host_syncs) / SYNC_CHECK_ITERATIONS
            entry["host_sync_sites"] = per_iteration(t.host_syncs, SYNC_CHECK_ITERATIONS)
        if t.host_reads is not None:
            entry["host_reads_per_iteration"] = sum(t.host_reads.values())
            entry["host_reads"] = t.host_reads
        if t.profile is not None:
            entry["profile"] = {**t.profile, **profile_floor(passes, pass_profiles[t.variant.name])}
        methods_out.append(entry)
    return {
        "schema": 1,
        "created": started.isoformat(timespec="seconds"),
        "command": "nuat " + shlex.join(sys.argv[1:]) if sys.argv and "nuat" in sys.argv[0] else None,
        "config": {
            "methods": list(cfg.methods), "dataset": first.dataset, "model": first.model,
            "batch_size": first.batch_size, "eps": first.eps, "steps": cfg.steps, "trials": cfg.trials,
            "warmup": cfg.warmup, "variants": [v.name for v in cfg.variants], "seed": cfg.seed,
            "clock": cfg.clock, "profile": cfg.profile,
            # profiles ran before the host-read check (commit aa59bd5): before, compiled variants'
            # profiles described the eager step (benchmarks/gpu/pass_ratios.py reads this)
            "profile_before_host_checks": True,
        },
        "environment": {
            "machine": machine(), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
            or platform.machine(),
            "torch": torch.__version__, "python": platform.python_version(), "torch_threads": torch.get_num_threads(),
            "commit": git_commit(), "load_average_before": load_before, "load_average_after": load_average(),
            "memory_kind": memory_kind,
            # glibc keeps freed memory mapped (nuat.train.fastpath; NUAT_KEEP_FREED_MEMORY=0: off)
            "cpu_memory_kept": fastpath.keep_freed_cpu_memory() if device.type == "cpu" else None,
        },
        "passes": passes_out,
        "methods": methods_out,
    }
