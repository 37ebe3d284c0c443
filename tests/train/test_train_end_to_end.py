"""A short real training through the CLI: run directory, metrics, checkpoints, reload."""

import json

import pytest
import torch

import nuat
from nuat.attacks import pgd
from nuat.cli import main
from nuat.data import load_dataset, validation_split
from nuat.eval.accuracy import batch_correct
from nuat.train.schedules import cyclic_step_lr


@pytest.fixture(scope="module")
def mnist_run(real_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "mnist-nuat"
    code = main(["train", "--dataset", "mnist", "--method", "nuat-wa", "--eps", "0.3", "--epochs", "3",
                 "--train-limit", "6000", "--batch-size", "100", "--lr", "0.05", "--tau", "0.9",
                 "--data-dir", str(real_data_dir), "--out", str(out), "--final-eval", "200", "--no-progress"])
    assert code == 0
    return out


def test_run_directory_contents(mnist_run):
    names = {p.name for p in mnist_run.iterdir()}
    assert {"config.json", "metrics.jsonl", "summary.json", "best.safetensors", "last.safetensors",
            "best-ema.safetensors", "last-ema.safetensors"} <= names
    config = json.loads((mnist_run / "config.json").read_text())
    assert config["method"] == "nuat-wa" and config["lam_max"] == 4.0 and config["averages"] == {"ema": 0.9}
    assert config["val_size"] == 1000 and config["commit"] and config["nuat_version"] == nuat.__version__


def test_metrics_one_line_per_epoch_with_published_schedule(mnist_run):
    lines = [json.loads(l) for l in (mnist_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]
    for key in ("loss", "train_clean_acc", "train_adv_acc", "val_ifgsm7_acc", "lr", "lambda", "seconds",
                "images_per_s", "val_ifgsm7_acc_ema"):
        assert all(key in r for r in lines), key
    # NuAT-WA: lambda = lam_max * epoch / E
    assert [r["lambda"] for r in lines] == pytest.approx([0.0, 4.0 / 3, 8.0 / 3])
    iters = 60
    last_lr = cyclic_step_lr((3 * iters - 1) / (3 * iters), lr_max=0.05, up_fraction=0.25, down_fraction=0.75)
    assert lines[-1]["lr"] == pytest.approx(last_lr)


def test_checkpoint_metadata_and_reload(mnist_run, real_data_dir):
    model = nuat.load_model(mnist_run / "best.safetensors")
    meta = model.checkpoint_metadata
    assert not model.training
    assert meta["model_spec"]["name"] == "small-cnn" and meta["dataset"] == "mnist"
    assert meta["eps"] == pytest.approx(0.3) and meta["threat_model"] == "linf" and meta["method"] == "nuat-wa"
    from nuat.data import load_dataset
    test = load_dataset("mnist", "test", real_data_dir)
    assert meta["classes"] == test.classes and len(meta["classes"]) == 10  # label names, in label order
    lines = [json.loads(l) for l in (mnist_run / "metrics.jsonl").read_text().splitlines()]
    best = max(lines, key=lambda r: r["val_ifgsm7_acc"])
    assert meta["epoch"] == best["epoch"] and meta["val_ifgsm7_acc"] == pytest.approx(best["val_ifgsm7_acc"])


def test_training_made_the_model_more_robust(mnist_run, real_data_dir):
    torch.manual_seed(0)
    trained = nuat.load_model(mnist_run / "best.safetensors")
    untrained = nuat.models.build_from_spec(trained.model_spec).eval()
    test = load_dataset("mnist", "test", str(real_data_dir))
    x = test.get_batch(torch.arange(300)).float() / 255
    y = test.labels[:300]
    attack = lambda m, a, b: pgd(m, a, b, eps=0.3, steps=20, step_size=0.03)  # noqa: E731
    robust_trained = batch_correct(trained, x, y, attack, 0.3).float().mean().item()
    robust_untrained = batch_correct(untrained, x, y, attack, 0.3).float().mean().item()
    clean_trained = batch_correct(trained, x, y, None, 0.3).float().mean().item()
    assert clean_trained > 0.8
    assert robust_trained > robust_untrained + 0.2
    summary = json.loads((mnist_run / "summary.json").read_text())
    assert summary["test"]["best"]["clean_acc"] > 0.8


def test_validation_split_is_first_100_of_each_class(real_data_dir):
    data = load_dataset("mnist", "train", str(real_data_dir))
    _, val = validation_split(data.labels, per_class=100)
    labels = data.labels[val]
    assert torch.bincount(labels).tolist() == [100] * 10
    for c in range(10):
        assert val[labels == c].tolist() == (data.labels == c).nonzero().squeeze(1)[:100].tolist()


def test_step_lr_drops_reach_the_optimiser(real_data_dir, tmp_path):
    out = tmp_path / "gat"
    code = main(["train", "--dataset", "mnist", "--method", "gat", "--epochs", "3", "--train-limit", "300",
                 "--batch-size", "100", "--lr", "0.05", "--lr-drops", "0.3,0.6", "--val-per-class", "5",
                 "--data-dir", str(real_data_dir), "--out", str(out), "--final-eval", "0", "--no-progress"])
    assert code == 0
    assert json.loads((out / "config.json").read_text())["lr_drops"] == [0.3, 0.6]
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in lines] == pytest.approx([0.05, 0.005, 0.0005])  # drops from epochs 0.9 -> 1, 1.8 -> 2


def test_curves_png_is_drawn_every_epoch(mnist_run, tmp_path, monkeypatch):
    from nuat.train.curves import best_epoch, plot_training_curves

    png = mnist_run / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    records = [json.loads(l) for l in (mnist_run / "metrics.jsonl").read_text().splitlines()]
    # the marked epoch is the reported checkpoint's: best-ema for a -WA run
    ema = nuat.load_model(mnist_run / "best-ema.safetensors").checkpoint_metadata
    assert best_epoch(records) == ema["epoch"]
    plain = [{k: v for k, v in r.items() if not k.endswith("_ema")} for r in records]
    assert best_epoch(plain) == nuat.load_model(mnist_run / "best.safetensors").checkpoint_metadata["epoch"]
    # each checkpoint says which weights it holds (the two files' metadata differed only in scores)
    config = json.loads((mnist_run / "config.json").read_text())
    assert ema["weights"] == "ema" and ema["tau"] == config["averages_effective"]["ema"]
    assert nuat.load_model(mnist_run / "best.safetensors").checkpoint_metadata["weights"] == "model"
    assert best_epoch([{"epoch": 1, "val_ifgsm7_acc": 0.5}, {"epoch": 2, "val_ifgsm7_acc": 0.5}]) == 1  # first wins
    empty = tmp_path / "metrics.jsonl"
    empty.write_text("")
    assert plot_training_curves(empty, tmp_path / "c.png") is None and not (tmp_path / "c.png").exists()
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # not installed: no plot, no error
    assert plot_training_curves(mnist_run / "metrics.jsonl", tmp_path / "c.png") is None


def test_curves_are_redrawn_at_most_once_a_minute_but_always_at_the_end(tmp_path, monkeypatch):
    import time
    from types import SimpleNamespace

    import nuat.train.curves as curves
    from nuat.train import loop

    calls = []
    monkeypatch.setattr(curves, "plot_training_curves", lambda *a, **k: calls.append(a))
    cfg = SimpleNamespace(method="nuat", dataset="mnist", model="small-cnn", eps=0.3)
    run = SimpleNamespace(cfg=cfg, out=tmp_path, curves_drawn=None, log=print, metrics_lines=1)
    loop._draw_curves(run)  # first epoch: drawn
    run.metrics_lines = 2
    loop._draw_curves(run)  # right after: skipped
    assert len(calls) == 1
    run.curves_drawn = (time.perf_counter() - loop.CURVES_INTERVAL - 1, 0.5, 1)
    loop._draw_curves(run)  # a minute later: drawn
    run.metrics_lines = 3
    run.curves_drawn = (time.perf_counter() - loop.CURVES_INTERVAL - 1, 2.0, 2)
    loop._draw_curves(run)  # but not before 50 x its drawing time
    loop._draw_curves(run, force=True)  # the end of the run: always
    assert len(calls) == 3
    loop._draw_curves(run, force=True)  # nothing new since: not drawn twice
    assert len(calls) == 3
