"""Small models and batches shared by the attack and method tests, a command-line runner, and a
loader for the repository's scripts."""

import importlib.util
from pathlib import Path

import torch
from torch import nn

from nuat.projections import check_linf


def tiny_cnn(seed=0, batchnorm=True, train=False):
    """A 1-channel 8x8 CNN with 10 classes (BatchNorm optional), in eval mode unless ``train``."""
    torch.manual_seed(seed)
    norm = nn.BatchNorm2d(4) if batchnorm else nn.Identity()
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), norm, nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    return model.train(train)


def edge_batch(seed=0, n=16):
    """(n, 1, 8, 8) images in [0, 1] whose first 8 sit on the box edges (all 0, all 1), and labels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    x[:4] = 0.0  # pixels at the box edges: the box must clip there
    x[4:8] = 1.0
    return x, torch.randint(0, 10, (n,), generator=g)


def check_attack_on_edge_batch(attack, eps):
    """Run ``attack(model, x, y, eps)`` on ``tiny_cnn`` and ``edge_batch``: its output must lie in
    the eps-ball around the images and in the [0, 1] box, with their shape and dtype."""
    x, y = edge_batch()
    x_adv = attack(tiny_cnn(), x, y, eps)
    check_linf(x_adv, x, eps)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype


class Linear(nn.Module):
    """f(x) = W x + b on flattened inputs: its worst case in an L-inf ball is known in closed form."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(b)

    def forward(self, x):
        return x.flatten(1) @ self.w.T + self.b


def run_main(capsys, argv):
    """Run ``nuat.cli.main(argv)`` in-process: (exit code, stdout, stderr); argparse's own errors
    (SystemExit) give their code too."""
    from nuat.cli import main

    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def mnist_checkpoint(path, num_classes=10):
    """An untrained small-cnn for 28 x 28 grey images saved as a nuat checkpoint (MNIST, eps 0.3) at ``path``."""
    from nuat.checkpoints import save_model
    from nuat.models import build_model

    save_model(path, build_model("small-cnn", num_classes=num_classes, in_channels=1, image_size=28),
               dataset="mnist", eps=0.3)
    return path


def load_script(relative: str):
    """The module of a repository script (e.g. ``scripts/baselines/compare_runs.py``), loaded by path:
    the scripts are not a package."""
    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
