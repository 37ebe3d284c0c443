"""The one training loop: a method supplies the adversarial batch and the loss; the loop owns the
optimiser, the schedules (LR per iteration, lambda per epoch), weight averages, validation,
checkpoints and logging."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from nuat.attacks.ifgsm import ifgsm
from nuat.checkpoints import save_model
from nuat.data import BatchLoader, get_dataset_spec, load_dataset, subset, validation_split
from nuat.eval.accuracy import batch_correct
from nuat.methods import build_method
from nuat.models import build_model
from nuat.train.config import TrainConfig
from nuat.train.ema import ModelEMA, tau_for_run
from nuat.train.meta import provenance
from nuat.train.schedules import cyclic_step_lr, lambda_ramp

VAL_BATCH = 500


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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


def build_run(cfg: TrainConfig) -> Run:
    """Load data, build model/method/optimiser/averages. Writes nothing."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    spec = get_dataset_spec(cfg.dataset)
    data = load_dataset(cfg.dataset, "train", cfg.data_dir)
    train_idx, val_idx = validation_split(data.labels, per_class=cfg.val_per_class)
    if cfg.train_limit is not None:
        train_idx = train_idx[: cfg.train_limit]
    train_data, val_data = subset(data, train_idx), subset(data, val_idx)
    c, h, _ = data.image_shape
    model = build_model(cfg.model, num_classes=len(data.classes), in_channels=c, image_size=h).to(device)
    method = build_method(cfg.method, **cfg.method_hparams)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    data_gen = torch.Generator().manual_seed(cfg.seed)
    loader = BatchLoader(train_data, cfg.batch_size, shuffle=True, generator=data_gen, augment=spec.augment,
                         device=device, drop_last=False)
    attack_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    total_steps = len(loader) * cfg.epochs
    taus = {name: tau_for_run(tau, total_steps) if cfg.scale_averages else tau for name, tau in cfg.averages.items()}
    averages = {name: ModelEMA(model, tau) for name, tau in taus.items()}
    info = {
        "dataset": cfg.dataset, "eps": cfg.eps, "threat_model": "linf", "method": cfg.method,
        "train_size": len(train_data), "val_size": len(val_data), "val_per_class": cfg.val_per_class,
        "iterations": total_steps, "averages_effective": taus,
        **provenance(),
    }
    return Run(cfg, device, model, method, optimizer, loader, val_data, averages, attack_gen, Path(cfg.out), info)


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


def train_epoch(run: Run, epoch: int, lam: float) -> dict[str, Any]:
    """One pass over the training data. Stats accumulate on the device and are read once."""
    cfg, model, method = run.cfg, run.model, run.method
    model.train()
    method.start_epoch(epoch)
    sums: dict[str, torch.Tensor] = {}
    passes = [0, 0, 0]
    n_batches = len(run.train_loader)
    total_iters = n_batches * cfg.epochs
    avg_models = {name: ema.model for name, ema in run.averages.items()}
    start = time.perf_counter()
    bar = tqdm(run.train_loader, total=n_batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
               disable=not cfg.progress, unit="batch")
    for batch_index, (x, y) in enumerate(bar):
        lr = cyclic_step_lr(run.iteration / total_iters, lr_max=cfg.lr, up_fraction=cfg.lr_up,
                            down_fraction=cfg.lr_down)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        from nuat.methods.base import StepContext

        ctx = StepContext(epoch=epoch, epochs=cfg.epochs, batch_index=batch_index, iteration=run.iteration,
                          eps=cfg.eps, lam=lam, generator=run.attack_generator, averages=avg_models)
        out = method.loss(model, x, y, ctx)
        run.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        run.optimizer.step()
        method.after_step(model)
        for ema in run.averages.values():
            ema.update(model)
        for key, value in out.sums.items():
            sums[key] = sums[key] + value if key in sums else value.clone()
        m = y.shape[0]
        passes = [p + m * q for p, q in zip(passes, out.passes)]
        run.iteration += 1
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    seconds = time.perf_counter() - start
    host = {k: float(v) for k, v in sums.items()}  # the epoch's one host read of the stats
    n = max(host.get("n", 0.0), 1.0)
    stats: dict[str, Any] = {
        "loss": host.get("loss", float("nan")) / n,
        "ce_clean": host.get("ce", float("nan")) / n,
        "regulariser": host.get("reg", float("nan")) / n,
        "train_clean_acc": host.get("correct_clean", float("nan")) / n,
        "train_adv_acc": host.get("correct_adv", float("nan")) / n,
        "lr": lr,
        "lambda": lam,
        "seconds": seconds,
        "images_per_s": n / seconds if seconds > 0 else float("nan"),
        "forward_per_example": passes[0] / n,
        "input_backward_per_example": passes[1] / n,
        "full_backward_per_example": passes[2] / n,
    }
    stats.update(method.end_epoch(host))
    return stats


def _checkpoint_info(run: Run, epoch: int, scores: dict[str, float]) -> dict[str, Any]:
    return {**run.info, "epoch": epoch + 1, "val_ifgsm7_acc": scores["robust"], "val_clean_acc": scores["clean"]}


def save_epoch(run: Run, epoch: int, scores: dict[str, dict[str, float]]) -> list[str]:
    """Write ``last`` (and ``last-<average>``) every epoch; ``best*`` when the validation I-FGSM
    accuracy improves (the best epoch is chosen on the validation split, as published)."""
    saved = []
    models = {"": run.model, **{f"-{name}": ema.model for name, ema in run.averages.items() if name == "ema"}}
    for suffix, model in models.items():
        info = _checkpoint_info(run, epoch, scores[suffix])
        save_model(run.out / f"last{suffix}.safetensors", model, **info)
        robust = scores[suffix]["robust"]
        if robust > run.best.get(suffix, -1.0) or (robust != robust and suffix not in run.best):
            run.best[suffix] = robust
            save_model(run.out / f"best{suffix}.safetensors", model, **info)
            saved.append(f"best{suffix}")
    return saved


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run a whole training; returns the run summary (also written to ``summary.json``)."""
    cfg.validate()
    run = build_run(cfg)  # raises on bad data/model/method names before anything is written
    run.out.mkdir(parents=True, exist_ok=True)
    (run.out / "config.json").write_text(json.dumps({**cfg.to_dict(), **run.info}, indent=2) + "\n")
    metrics_path = run.out / "metrics.jsonl"
    metrics_path.write_text("")
    log = tqdm.write if cfg.progress else print
    log(f"nuat: {cfg.method} on {cfg.dataset} ({run.info['train_size']} train / {run.info['val_size']} validation), "
        f"{cfg.model}, eps {cfg.eps:.4g}, {cfg.epochs} epochs, batch {cfg.batch_size}, device {run.device}")
    total_seconds = 0.0
    for epoch in range(cfg.epochs):
        lam = lambda_ramp(epoch, cfg.epochs, lam_max=cfg.lam_max, ramp_fraction=cfg.ramp_fraction)
        stats = train_epoch(run, epoch, lam)
        total_seconds += stats["seconds"]
        scores = {}
        for suffix, model in {"": run.model, **{f"-{k}": e.model for k, e in run.averages.items() if k == "ema"}}.items():
            clean, robust = validate(model, run.val_data, eps=cfg.eps, steps=cfg.val_steps, device=run.device)
            scores[suffix] = {"clean": clean, "robust": robust}
        stats["val_clean_acc"], stats["val_ifgsm7_acc"] = scores[""]["clean"], scores[""]["robust"]
        if "-ema" in scores:
            stats["val_clean_acc_ema"], stats["val_ifgsm7_acc_ema"] = scores["-ema"]["clean"], scores["-ema"]["robust"]
        stats["saved"] = save_epoch(run, epoch, scores)
        record = {"epoch": epoch + 1, **stats}
        with open(metrics_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        log(format_epoch(record))
    summary = {"out": str(run.out), "train_seconds": total_seconds, "best_val_ifgsm7_acc": run.best.get(""),
               "best_val_ifgsm7_acc_ema": run.best.get("-ema"), **run.info}
    if cfg.final_eval:
        from nuat.train.final_eval import final_evaluation

        summary["test"] = final_evaluation(run.out, cfg, device=run.device, log=log)
    (run.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def format_epoch(r: dict[str, Any]) -> str:
    """One human line per epoch."""
    line = (f"epoch {r['epoch']:>3}  loss {r['loss']:.4f}  clean {100 * r['train_clean_acc']:.1f}%  "
            f"adv {100 * r['train_adv_acc']:.1f}%  val clean {100 * r['val_clean_acc']:.1f}%  "
            f"val I-FGSM-7 {100 * r['val_ifgsm7_acc']:.1f}%")
    if "val_ifgsm7_acc_ema" in r:
        line += f" (EMA {100 * r['val_ifgsm7_acc_ema']:.1f}%)"
    line += f"  lr {r['lr']:.4f}  lambda {r['lambda']:.3f}  {r['seconds']:.1f}s  {r['images_per_s']:.0f} img/s"
    if "effective_two_step_epochs" in r:
        line += f"  two-step batches {r['two_step_batches']} (effective {r['effective_two_step_epochs']:.2f} epochs)"
    return line
