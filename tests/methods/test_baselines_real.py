"""One short real training per baseline on MNIST: it must end more robust than where it started.

Each run uses 3,000 training images, batch 50, 3 epochs, eps 0.1, and 3 attack steps for the
multi-step methods (about a minute for all methods on one CPU core); robustness is PGD-20 accuracy
on the first 300 test images, compared with the same-seed untrained network. ERM is only required
to learn (it is not meant to be robust).
"""

import json

import pytest
import torch

import nuat
from nuat.attacks import pgd
from nuat.cli import main
from nuat.data import load_dataset
from nuat.eval.accuracy import batch_correct

EPS = 0.1
N_TEST = 300
ROBUST_METHODS = ["fgsm-at", "rfgsm-at", "fbf", "gat", "pgd-at", "trades", "awp", "trades-awp"]
MULTI_STEP = {"pgd-at": 4, "trades": 6, "awp": 5, "trades-awp": 8}  # forwards per example with 3 steps


@pytest.fixture(scope="module")
def mnist_test(real_data_dir):
    test = load_dataset("mnist", "test", str(real_data_dir))
    return test.get_batch(torch.arange(N_TEST)).float() / 255, test.labels[:N_TEST]


def short_run(method, real_data_dir, out, *extra):
    code = main(["train", "--dataset", "mnist", "--method", method, "--eps", str(EPS), "--epochs", "3",
                 "--train-limit", "3000", "--batch-size", "50", "--lr", "0.05", "--val-per-class", "20",
                 "--final-eval", "0", "--data-dir", str(real_data_dir), "--out", str(out), "--no-progress", *extra])
    assert code == 0
    return nuat.load_model(out / "best.safetensors")


def accuracies(model, x, y):
    attack = lambda m, a, b: pgd(m, a, b, eps=EPS, steps=20, step_size=EPS / 8,  # noqa: E731
                                 generator=torch.Generator().manual_seed(0))
    clean = batch_correct(model, x, y, None, EPS).float().mean().item()
    robust = batch_correct(model, x, y, attack, EPS).float().mean().item()
    return clean, robust


@pytest.mark.slow
@pytest.mark.parametrize("method", ROBUST_METHODS)
def test_short_run_improves_robust_accuracy(method, real_data_dir, mnist_test, tmp_path):
    x, y = mnist_test
    extra = ("--attack-steps", "3") if method in MULTI_STEP else ()
    trained = short_run(method, real_data_dir, tmp_path / method, *extra)
    torch.manual_seed(0)
    untrained = nuat.models.build_from_spec(trained.model_spec).eval()
    clean, robust = accuracies(trained, x, y)
    _, robust_before = accuracies(untrained, x, y)
    print(f"{method}: clean {clean:.3f} robust {robust:.3f} (untrained {robust_before:.3f})")
    assert robust > robust_before + 0.2, (method, robust, robust_before)
    # the run's cost: the method's passes per step, summed over the epochs, in metrics and summary
    summary = json.loads((tmp_path / method / "summary.json").read_text())
    lines = [json.loads(line) for line in (tmp_path / method / "metrics.jsonl").read_text().splitlines()]
    if method in MULTI_STEP and method != "trades-awp":  # (trades-awp: AWP starts after its warm-up)
        assert all(r["forward_per_example"] == MULTI_STEP[method] for r in lines)
    cost = summary["cost"]
    assert cost["epochs"] == 3
    assert cost["forward_per_example"] == pytest.approx(sum(r["forward_per_example"] for r in lines))
    assert cost["train_seconds"] > 0 and cost["images_per_s"] > 0 and cost["wall_seconds"] > cost["train_seconds"]


@pytest.mark.slow
def test_short_erm_run_learns_but_is_not_robust(real_data_dir, mnist_test, tmp_path):
    x, y = mnist_test
    trained = short_run("erm", real_data_dir, tmp_path / "erm")
    clean, robust = accuracies(trained, x, y)
    assert clean > 0.85
    assert robust < clean - 0.2
