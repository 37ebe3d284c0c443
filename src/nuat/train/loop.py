"""The one training loop: a method supplies the adversarial batch and the loss; the loop owns the
optimiser, the schedules (LR per iteration, lambda per epoch), weight averages, validation,
checkpoints and logging."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from nuat.attacks.ifgsm import ifgsm
from nuat.checkpoints import atomic_write_text, save_model
from nuat.data import BatchLoader, check_classes, get_dataset_spec, load_dataset, subset, validation_split
from nuat.errors import DataError
from nuat.eval.accuracy import batch_correct
from nuat.losses import nuclear_backend
from nuat.methods import build_method
from nuat.models import build_model
from nuat.methods.base import StepContext
from nuat.train import fastpath, health, resume
from nuat.train.config import TrainConfig
from nuat.train.device import resolve_device
from nuat.train.progress import EpochProgress
from nuat.train.rundir import clear_run_outputs, saved_states
from nuat.train.state import HEALTHY_STATE
from nuat.train.ema import ModelEMA, tau_for_run
from nuat.train.meta import provenance
from nuat.train.schedules import cyclic_step_lr, lambda_ramp, step_lr

VAL_BATCH = 500


@dataclass
class Run:
    """Everything a run holds in memory."""

    cfg: TrainConfig
    device: torch.device
    model: nn.Module
    method: Any
    optimizer: torch.optim.Optimizer
    train_loader: BatchLoader
    val_data: Any
    averages: dict[str, ModelEMA]
    attack_generator: torch.Generator
    out: Path
    info: dict[str, Any]
    best: dict[str, float] = field(default_factory=dict)
    iteration: int = 0
    metrics_lines: int = 0
    train_seconds: float = 0.0
    stop_signal: int = 0
    rollbacks: set[int] = field(default_factory=set)
    remedy_active: bool = False
    health: dict[str, Any] = field(default_factory=dict)
    #: what the method's passes run through: ``model`` or its ``torch.compile`` wrapper (``--compile``)
    step_model: nn.Module | None = None
    #: (when curves.png was last drawn, how long drawing took, metric lines it showed), perf_counter s
    curves_drawn: tuple[float, float, int] | None = None

    def __post_init__(self) -> None:
        if self.step_model is None:
            self.step_model = self.model

    def log(self, line: str) -> None:
        (tqdm.write if self.cfg.progress else print)(line)


def build_run(cfg: TrainConfig) -> Run:
    """Load data, build model/method/optimiser/averages. Writes nothing."""
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        fastpath.keep_freed_cpu_memory()  # no page faults for every step's activations (docs/speed.md)
    torch.manual_seed(cfg.seed)
    spec = get_dataset_spec(cfg.dataset)
    data = load_dataset(cfg.dataset, "train", cfg.data_dir, progress=cfg.progress)
    train_idx, val_idx = validation_split(data.labels, per_class=cfg.val_per_class)
    if cfg.train_limit is not None:
        train_idx = train_idx[: cfg.train_limit]
    train_data, val_data = subset(data, train_idx), subset(data, val_idx)
    c, h, _ = data.image_shape
    if cfg.final_eval and spec.num_classes is None:
        # classes read from the folders: a test split with other classes would otherwise be
        # refused only after the training (fixed-class data sets cannot differ)
        test = load_dataset(cfg.dataset, "test", cfg.data_dir, image_size=h, progress=cfg.progress)
        check_classes(test, data.classes, f"the {cfg.dataset} test split (for --final-eval {cfg.final_eval})")
    model = build_model(cfg.model, num_classes=len(data.classes), in_channels=c, image_size=h).to(device)
    model = fastpath.prepare_model(model, channels_last=cfg.channels_last)
    method = build_method(cfg.method, **cfg.method_hparams)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    data_gen = torch.Generator().manual_seed(cfg.seed)
    loader = BatchLoader(train_data, cfg.batch_size, shuffle=True, generator=data_gen, augment=spec.augment,
                         device=device, drop_last=False)
    attack_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    total_steps = len(loader) * cfg.epochs
    taus = {name: tau_for_run(tau, total_steps, published_steps=cfg.tau_steps) if cfg.scale_averages else tau
            for name, tau in cfg.averages.items()}
    averages = {name: ModelEMA(model, tau) for name, tau in taus.items()}
    info = {
        "dataset": cfg.dataset, "eps": cfg.eps, "threat_model": "linf", "method": cfg.method,
        "train_size": len(train_data), "val_size": len(val_data), "val_per_class": cfg.val_per_class,
        "iterations": total_steps, "averages_effective": taus, "classes": list(data.classes),
        **provenance(),
    }
    return Run(cfg, device, model, method, optimizer, loader, val_data, averages, attack_gen, Path(cfg.out), info,
               step_model=fastpath.step_model(model, compile=cfg.compile, mode=cfg.compile_mode))


def validate(model: nn.Module, data: Any, *, eps: float, steps: int, device: torch.device) -> tuple[float, float]:
    """(clean accuracy, I-FGSM-`steps` accuracy at eps, step eps/steps) on ``data`` (reference details)."""
    if len(data) == 0:
        return float("nan"), float("nan")
    loader = BatchLoader(data, VAL_BATCH, shuffle=False, generator=torch.Generator(), augment="none", device=device)
    attack = lambda m, x, y: ifgsm(m, x, y, eps=eps, steps=steps)  # noqa: E731
    clean = robust = 0
    for x, y in loader:
        clean += int(batch_correct(model, x, y, None, eps).sum())
        robust += int(batch_correct(model, x, y, attack, eps).sum())
    return clean / len(data), robust / len(data)


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived; the run can be resumed from its newest state. ``saved_now``: that
    state was saved for this signal (False: a second signal stopped the run at once, and the newest
    state is the last one saved before)."""

    def __init__(self, signum: int, state: Path, *, saved_now: bool = True) -> None:
        super().__init__(f"signal {signum}")
        self.signum, self.state, self.saved_now = signum, state, saved_now


class StartedRunDataError(DataError):
    """A data file failed after the run had saved a state (an image folder's images are decoded as
    training reads them): the run can be continued with ``--resume`` once the data is fixed."""

    def __init__(self, message: str, out: Path) -> None:
        super().__init__(message)
        self.out = out


class TrainingDiverged(Exception):
    """The training loss became NaN or Inf; nothing after the last good state was saved."""


def _step(run: Run, epoch: int, lam: float, batch_index: int, x: torch.Tensor, y: torch.Tensor,
          progress: EpochProgress) -> None:
    """One optimiser step of the method; stats stay on the device."""
    cfg = run.cfg
    fastpath.begin_step(cfg.compile, cfg.compile_mode)
    total_iters = len(run.train_loader) * cfg.epochs
    if cfg.lr_drops:  # a method's published step schedule (GAT), per epoch
        lr = step_lr(epoch, cfg.epochs, lr_max=cfg.lr, drops=cfg.lr_drops)
    else:
        lr = cyclic_step_lr(run.iteration / total_iters, lr_max=cfg.lr, up_fraction=cfg.lr_up,
                            down_fraction=cfg.lr_down)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    ctx = StepContext(epoch=epoch, epochs=cfg.epochs, batch_index=batch_index, iteration=run.iteration,
                      eps=cfg.eps, lam=lam, generator=run.attack_generator,
                      averages={name: ema.model for name, ema in run.averages.items()})
    x = fastpath.prepare_input(x, channels_last=cfg.channels_last)
    # forward passes only under autocast (the loss's backward runs outside, the attacks' input
    # gradients switch it off); the backend is read by the nuclear norm's forward
    with fastpath.autocast(run.device, cfg.amp), nuclear_backend(cfg.nuclear_backend):
        out = run.method.loss(run.step_model, x, y, ctx)
    run.optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    run.optimizer.step()
    run.method.after_step(run.model)
    for ema in run.averages.values():
        ema.update(run.model)
    sums = out.sums if "loss" in out.sums else {**out.sums, "loss": out.loss.detach() * y.shape[0]}  # divergence check
    progress.add(sums, out.passes, y.shape[0])
    run.iteration += 1


def _checkpoint_mid_epoch(run: Run, epoch: int, progress: EpochProgress) -> None:
    """Save the full state every ``save_every`` steps and on SIGINT/SIGTERM (after checking the loss)."""
    stop = run.stop_signal
    due = run.cfg.save_every and run.iteration % run.cfg.save_every == 0
    if not (stop or due):
        return
    if not progress.loss_is_finite():
        raise TrainingDiverged(f"non-finite training loss in epoch {epoch + 1}")
    path = resume.save(run, epoch, progress)
    if stop:
        raise TrainingInterrupted(stop, path)


def train_epoch(run: Run, epoch: int, lam: float, progress: EpochProgress) -> dict[str, Any]:
    """Train one epoch (or its rest, after a resume) and summarise it. Stats are read once."""
    cfg, model, method = run.cfg, run.model, run.method
    model.train()
    if progress.batch == 0:
        method.start_epoch(epoch)
    if run.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(run.device)
    n_batches = len(run.train_loader)
    bar = tqdm(total=n_batches, initial=progress.batch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
               disable=None if cfg.progress else True, unit="batch")  # None: only on a terminal
    start = time.perf_counter()
    try:
        for batch_index, (x, y) in enumerate(run.train_loader, progress.batch):
            _step(run, epoch, lam, batch_index, x, y, progress)
            bar.update(1)
            if run.cfg.save_every or run.stop_signal:
                progress.seconds += time.perf_counter() - start
                start = time.perf_counter()
                _checkpoint_mid_epoch(run, epoch, progress)
    finally:
        bar.close()
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    progress.seconds += time.perf_counter() - start
    if not progress.loss_is_finite():
        raise TrainingDiverged(f"non-finite training loss in epoch {epoch + 1}")
    host = {k: float(v) for k, v in progress.sums.items()}  # the epoch's one host read of the stats
    n = max(host.get("n", 0.0), 1.0)
    seconds = progress.seconds
    stats: dict[str, Any] = {
        "loss": host.get("loss", float("nan")) / n,
        "ce_clean": host.get("ce", float("nan")) / n,
        "regulariser": host.get("reg", float("nan")) / n,
        "train_clean_acc": host.get("correct_clean", float("nan")) / n,
        "train_adv_acc": host.get("correct_adv", float("nan")) / n,
        "lr": run.optimizer.param_groups[0]["lr"],
        "lambda": lam,
        "seconds": seconds,
        "images_per_s": n / seconds if seconds > 0 else float("nan"),
        "forward_per_example": progress.passes[0] / n,
        "input_backward_per_example": progress.passes[1] / n,
        "full_backward_per_example": progress.passes[2] / n,
    }
    if run.device.type == "cuda":
        stats["peak_memory_bytes"] = torch.cuda.max_memory_allocated(run.device)
        # CUDA graphs (--compile-mode reduce-overhead) replay in memory pools reserved when they were
        # recorded: a replay allocates nothing, so the allocated peak leaves the step's activations
        # out; the reserved peak counts the pools
        stats["peak_memory_reserved_bytes"] = torch.cuda.max_memory_reserved(run.device)
    stats.update(method.end_epoch(host))
    return stats


def _checkpoint_info(run: Run, epoch: int, scores: dict[str, float], suffix: str = "") -> dict[str, Any]:
    """A checkpoint's metadata: the run's facts, its epoch and validation scores, and which weights
    it holds (``weights``: ``model``, or the average's name with its ``tau``, so that a renamed
    ``-ema`` file still says it is the average)."""
    weights = {"weights": "model"}
    if suffix:
        name = suffix.removeprefix("-")
        weights = {"weights": name, "tau": run.averages[name].tau}
    return {**run.info, "epoch": epoch + 1, "val_ifgsm7_acc": scores["robust"], "val_clean_acc": scores["clean"],
            **weights}


def _reported_models(run: Run) -> dict[str, nn.Module]:
    """The model and, for -WA methods, its reported average (suffix ``-ema``)."""
    return {"": run.model, **{f"-{k}": e.model for k, e in run.averages.items() if k == "ema"}}


def save_epoch(run: Run, epoch: int, scores: dict[str, dict[str, float]]) -> list[str]:
    """Write ``last`` (and ``last-ema``) every epoch; ``best*`` when the validation I-FGSM accuracy
    improves (the best epoch is chosen on the validation split, as published). Without a
    validation split (``--val-per-class 0``, scores NaN) every epoch is the best so far: ``best``
    is the last epoch."""
    saved = []
    for suffix, model in _reported_models(run).items():
        info = _checkpoint_info(run, epoch, scores[suffix], suffix)
        save_model(run.out / f"last{suffix}.safetensors", model, **info)
        robust = scores[suffix]["robust"]
        if suffix not in run.best or robust > run.best[suffix] or math.isnan(robust):
            run.best[suffix] = robust
            save_model(run.out / f"best{suffix}.safetensors", model, **info)
            saved.append(f"best{suffix}")
    return saved


def _append_metrics(run: Run, record: dict[str, Any]) -> None:
    with open(run.out / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    run.metrics_lines += 1


#: curves.png is redrawn after an epoch only when this many seconds, and 50 times the last drawing's
#: time, have passed since the last drawing (and always at the end): drawing takes ~0.5 s, an epoch
#: on a GPU a few seconds
CURVES_INTERVAL = 60.0


def _draw_curves(run: Run, *, force: bool = False) -> None:
    """Redraw ``curves.png`` from ``metrics.jsonl`` if it has new lines (throttled unless ``force``);
    a plotting failure costs the plot, not the run."""
    from nuat.train.curves import plot_training_curves

    now = time.perf_counter()
    if run.curves_drawn is not None:
        last, took, lines = run.curves_drawn
        if lines == run.metrics_lines or (not force and now - last < max(CURVES_INTERVAL, 50 * took)):
            return
    cfg = run.cfg
    try:
        plot_training_curves(run.out / "metrics.jsonl", run.out / "curves.png",
                             title=f"{cfg.method} on {cfg.dataset}, {cfg.model}, eps {cfg.eps:.4g}")
    except Exception as exc:  # noqa: BLE001 (matplotlib's errors are many; training must go on)
        run.log(f"warning: curves.png not drawn ({type(exc).__name__}: {exc})")
    run.curves_drawn = (now, time.perf_counter() - now, run.metrics_lines)


def _truncate_metrics(run: Run) -> None:
    """Drop metric lines of epochs that the restored state has not finished (written before a kill)."""
    path = run.out / "metrics.jsonl"
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    path.write_text("".join(lines[: run.metrics_lines]))


def _install_signal_handlers(run: Run, *, at_once: bool = False) -> dict[int, Any]:
    """SIGINT/SIGTERM handlers; returns the previous ones. In training the first signal only flags
    itself, so the current optimiser step ends and the state is saved first; a second one raises
    :class:`TrainingInterrupted` at once (a step can be long: a user who signals again will not
    wait; the run resumes from the state saved before). With ``at_once`` (the final test
    evaluation, after the last state was saved) the first signal raises."""
    def handler(signum: int, frame: Any) -> None:
        again = bool(run.stop_signal)
        run.stop_signal = signum
        if at_once or again:
            raise TrainingInterrupted(signum, run.out / "state", saved_now=at_once)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
    return previous


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)


def _start(run: Run, resume_run: bool) -> tuple[int, EpochProgress]:
    """Fresh run: create the run directory, without an earlier run's outputs. Resume: restore the
    newest good state."""
    cfg = run.cfg
    if resume_run:
        found = resume.restore_latest(run)
        if found is not None:
            path, epoch, progress = found
            _truncate_metrics(run)
            run.log(f"resuming {run.out} from {path.name}: epoch {epoch + 1}, batch {progress.batch}")
            return epoch, progress
        run.log(f"no usable training state in {run.out / 'state'}; starting from the beginning")
    removed = clear_run_outputs(run.out) if run.out.is_dir() else []
    if removed:
        run.log(f"removed {len(removed)} files of an earlier run in {run.out}")
    run.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.out / "config.json", json.dumps({**cfg.to_dict(), **run.info}, indent=2) + "\n")
    (run.out / "metrics.jsonl").write_text("")
    return 0, EpochProgress()


def _validate_all(run: Run) -> dict[str, dict[str, float]]:
    scores = {}
    for suffix, model in _reported_models(run).items():
        clean, robust = validate(model, run.val_data, eps=run.cfg.eps, steps=run.cfg.val_steps, device=run.device)
        scores[suffix] = {"clean": clean, "robust": robust}
    return scores


def train(cfg: TrainConfig, *, resume_run: bool = False) -> dict[str, Any]:
    """Run (or resume) a whole training; returns the run summary (also written to ``summary.json``).

    Raises :class:`TrainingInterrupted` after saving the state on SIGINT/SIGTERM,
    :class:`TrainingDiverged` on a non-finite loss (the last good state and checkpoints stay) and
    :class:`StartedRunDataError` for a data file that fails once the run has saved a state (before
    that, the run's files are removed and the :class:`DataError` itself propagates).
    """
    wall_start = time.perf_counter()
    cfg.validate()
    run = build_run(cfg)  # raises on bad data/model/method names before anything is written
    made_folder = not run.out.exists()
    start_epoch, progress = _start(run, resume_run)
    try:
        return _train_started(run, start_epoch, progress, wall_start)
    except DataError as exc:  # found while reading (a lazy image folder): the run directory exists now
        if saved_states(run.out):
            raise StartedRunDataError(str(exc), run.out) from None
        # nothing to resume from: leave nothing half-written, so the same command works once the
        # data is fixed
        clear_run_outputs(run.out)
        if made_folder and not any(run.out.iterdir()):
            run.out.rmdir()
        raise


def _train_started(run: Run, start_epoch: int, progress: EpochProgress, wall_start: float) -> dict[str, Any]:
    """:func:`train` once its run directory is made (or its state restored)."""
    cfg = run.cfg
    run.log(f"nuat: {cfg.method} on {cfg.dataset} ({run.info['train_size']} train / {run.info['val_size']} "
            f"validation), {cfg.model}, eps {cfg.eps:.4g}, {cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''}, "
            f"batch {cfg.batch_size}, device {run.device}")
    previous = _install_signal_handlers(run)
    try:
        epoch = start_epoch
        while epoch < cfg.epochs:
            lam = lambda_ramp(epoch, cfg.epochs, lam_max=cfg.lam_max, ramp_fraction=cfg.ramp_fraction,
                              boost=cfg.lam_boost)
            stats = train_epoch(run, epoch, lam, progress)
            scores = _validate_all(run)
            stats["val_clean_acc"], stats["val_ifgsm7_acc"] = scores[""]["clean"], scores[""]["robust"]
            if "-ema" in scores:
                stats["val_clean_acc_ema"], stats["val_ifgsm7_acc_ema"] = scores["-ema"]["clean"], scores["-ema"]["robust"]
            if health.after_epoch(run, epoch, stats):  # rolled back: redo this epoch with the remedy
                epoch, progress = health.rollback(run)
                continue
            run.train_seconds += stats["seconds"]
            stats["saved"] = save_epoch(run, epoch, scores)
            record = {"epoch": epoch + 1, **stats}
            _append_metrics(run, record)
            run.log(format_epoch(record))
            _draw_curves(run)
            epoch += 1
            progress = EpochProgress()
            # the healthy state first: a kill between the two writes then resumes from the state
            # before, whose replay of this epoch writes the same healthy state again; the other way
            # round it left the healthy state an epoch behind, and a collapse in the next epoch could
            # no longer be rolled back
            if not stats.get("collapse"):
                resume.save(run, epoch, progress, name=HEALTHY_STATE)
            resume.save(run, epoch, progress)
            if run.stop_signal:
                raise TrainingInterrupted(run.stop_signal, run.out / "state")
    finally:
        _restore_signal_handlers(previous)
        if run.metrics_lines:
            _draw_curves(run, force=True)  # the last epochs, also of a stopped run
    summary = {"out": str(run.out), "train_seconds": run.train_seconds,
               "cost": run_cost(run.out / "metrics.jsonl", time.perf_counter() - wall_start),
               "best_val_ifgsm7_acc": run.best.get(""),
               "best_val_ifgsm7_acc_ema": run.best.get("-ema"), **run.info}
    if cfg.final_eval:
        from nuat.train.final_eval import final_evaluation

        # the run stays unfinished (no summary.json) until the evaluation ends: a stopped one is
        # resumed like any other and then only evaluates
        previous = _install_signal_handlers(run, at_once=True)
        try:
            summary["test"] = final_evaluation(run.out, cfg, device=run.device, log=run.log)
        finally:
            _restore_signal_handlers(previous)
    atomic_write_text(run.out / "summary.json", json.dumps(summary, indent=2) + "\n")  # marks the run finished
    return summary


def run_cost(metrics: Path, wall_seconds: float) -> dict[str, Any]:
    """The run's compute, summed over the epochs in ``metrics.jsonl`` (so a resumed run counts its
    earlier epochs): passes per training example over the whole run, training seconds, images/s,
    the peak GPU memory of any epoch (CUDA only) and the wall seconds of this invocation (training,
    validation and checkpoints; not the final test evaluation)."""
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    total = lambda key: sum(r.get(key, 0.0) for r in records)  # noqa: E731
    seconds = total("seconds")
    images = sum(r.get("images_per_s", 0.0) * r.get("seconds", 0.0) for r in records)
    cost: dict[str, Any] = {
        "epochs": len(records),
        "forward_per_example": total("forward_per_example"),
        "input_backward_per_example": total("input_backward_per_example"),
        "full_backward_per_example": total("full_backward_per_example"),
        "train_seconds": seconds,
        "images_per_s": images / seconds if seconds > 0 else float("nan"),
        "wall_seconds": wall_seconds,
    }
    memory = [r["peak_memory_bytes"] for r in records if "peak_memory_bytes" in r]
    if memory:
        cost["peak_memory_bytes"] = max(memory)
    return cost


def _percent(value: float) -> str:
    """``83.1%``; ``n/a`` where the method has no such pass (PGD-AT trains on no clean batch)."""
    return "n/a" if value != value else f"{100 * value:.1f}%"


def format_epoch(r: dict[str, Any]) -> str:
    """One human line per epoch."""
    line = (f"epoch {r['epoch']:>3}  loss {r['loss']:.4f}  clean {_percent(r['train_clean_acc'])}  "
            f"adv {_percent(r['train_adv_acc'])}  val clean {100 * r['val_clean_acc']:.1f}%  "
            f"val I-FGSM-7 {100 * r['val_ifgsm7_acc']:.1f}%")
    if "val_ifgsm7_acc_ema" in r:
        line += f" (EMA {100 * r['val_ifgsm7_acc_ema']:.1f}%)"
    line += f"  lr {r['lr']:.4f}  lambda {r['lambda']:.3f}  {r['seconds']:.1f}s  {r['images_per_s']:.0f} img/s"
    if "effective_two_step_epochs" in r:
        line += f"  two-step batches {r['two_step_batches']} (effective {r['effective_two_step_epochs']:.2f} epochs)"
    return line
