"""Seconds per training step of every method, measured round-robin in one process.

The training seconds of run_all.sh come from runs that ran hours apart on a shared machine, so
load from other jobs moves them. Here every method takes the same real Fashion-MNIST batches,
and the methods take turns (one block of steps each, repeated), so slow periods of the machine
hit all of them alike; the median block is reported, relative to ERM. The step is the loop's own
(method.loss, backward, optimiser step, after_step); no validation, no EMA update.

Usage: python scripts/baselines/step_cost.py [--data-dir ../shared/data] [--rounds 5] [--steps 5]
       [--out results/baselines/step_cost.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from nuat.bench.timing import load_average, summarize
from nuat.data import load_dataset
from nuat.methods import build_method
from nuat.methods.base import StepContext
from nuat.models import build_model
from nuat.train.meta import provenance

METHODS = ["erm", "fgsm-at", "rfgsm-at", "fbf", "gat", "nuat", "nuat2", "pgd-at", "trades", "awp"]


def _first(loads: list[float] | None) -> str:
    """The 1-minute load average of :func:`nuat.bench.timing.load_average`, or "n/a"."""
    return f"{loads[0]:.2f}" if loads else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="steps per method per round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default="results/baselines/step_cost.md")
    args = parser.parse_args()
    for option in ("rounds", "steps", "batch_size"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} {getattr(args, option)} is invalid; give an integer >= 1")
    data = load_dataset("fashion-mnist", "train", args.data_dir)
    batches = [(data.get_batch(torch.arange(i, i + args.batch_size)).float() / 255,
                data.labels[i: i + args.batch_size]) for i in range(0, args.steps * args.batch_size, args.batch_size)]
    runs = {}
    for name in METHODS:
        torch.manual_seed(0)
        model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28).train()
        method = build_method(name)
        runs[name] = (model, method, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                      torch.Generator().manual_seed(0))
    load_at_start = load_average()
    seconds: dict[str, list[float]] = {name: [] for name in METHODS}
    passes: dict[str, tuple[int, int, int]] = {}
    for rnd in range(args.rounds + 1):  # round 0 warms up
        for name in METHODS:
            model, method, opt, gen = runs[name]
            start = time.perf_counter()
            for i, (x, y) in enumerate(batches):
                ctx = StepContext(epoch=1, epochs=8, batch_index=i, iteration=i, eps=0.1,
                                  lam=method.defaults.lam_max, generator=gen)
                out = method.loss(model, x, y, ctx)
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
                method.after_step(model)
                passes[name] = out.passes
            if rnd:
                seconds[name].append((time.perf_counter() - start) / len(batches))
    load_at_end = load_average()
    stats = {name: summarize(seconds[name]) for name in METHODS}
    base = stats["erm"].median
    lines = ["# Seconds per training step (Fashion-MNIST, small-cnn, batch "
             f"{args.batch_size}, eps 0.1), methods measured round-robin", "",
             f"Median of {args.rounds} blocks of {args.steps} steps per method; {provenance()['machine']}; "
             f"commit {provenance()['commit']}; 1-minute load average {_first(load_at_start)} at the start, "
             f"{_first(load_at_end)} at the end. Spread: the quartiles of a method's blocks over ERM's median. "
             "Written by `scripts/baselines/step_cost.py`.", "",
             "| method | passes F / Bx / Bθ per example | ms per step | x ERM | spread of x ERM |",
             "|---|---|---:|---:|---:|"]
    for name in METHODS:
        st, (f, bx, bt) = stats[name], passes[name]
        lines.append(f"| {name} | {f} / {bx} / {bt} | {1000 * st.median:.1f} | {st.median / base:.1f} | "
                     f"{st.q1 / base:.1f}-{st.q3 / base:.1f} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
