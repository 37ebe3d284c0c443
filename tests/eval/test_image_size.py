"""Folder test splits are loaded at the model's input size (its ``model_spec``), not at the size of
the split's first image: a model trained on 40x30 images (30x30 inputs) is tested on 50x50 ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nuat.checkpoints import save_model
from nuat.errors import UsageError
from nuat.models import build_model

CLASSES = ["a", "b"]
TRAIN_SIZE, TEST_SIZE, SIDE = (40, 30), (50, 50), 30  # PIL sizes are (width, height)


def write_split(split_dir, per_class: int, size: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        (split_dir / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(split_dir / name / f"{k:04d}.png")


@pytest.fixture
def folder_run(tmp_path, monkeypatch):
    """(data root, run dir): imagefolder train 40x30 / test 50x50, and best.safetensors of a small-cnn
    built for the train split's 30x30 inputs, as ``nuat train`` builds it."""
    monkeypatch.setenv("NUAT_OFFLINE", "1")
    monkeypatch.delenv("NUAT_DATA", raising=False)
    root = tmp_path / "data"
    write_split(root / "imagefolder" / "train", 2, TRAIN_SIZE, 0)
    write_split(root / "imagefolder" / "test", 2, TEST_SIZE, 1)
    torch.manual_seed(0)
    model = build_model("small-cnn", num_classes=2, in_channels=3, image_size=SIDE)
    run = tmp_path / "run"
    run.mkdir()
    save_model(run / "best.safetensors", model, dataset="imagefolder", eps=8 / 255, threat_model="linf",
               method="erm", epoch=1, classes=CLASSES)
    return root, run


def test_final_evaluation_loads_the_test_split_at_the_models_size(folder_run):
    from nuat.train.config import TrainConfig
    from nuat.train.final_eval import final_evaluation

    root, run = folder_run
    cfg = TrainConfig(dataset="imagefolder", model="small-cnn", method="erm", eps=8 / 255, epochs=1, batch_size=4,
                      lr=0.1, data_dir=str(root), out=str(run), final_eval=4, progress=False)
    lines = []
    result = final_evaluation(run, cfg, device=torch.device("cpu"), log=lines.append)
    assert result["n"] == 4 and 0.0 <= result["best"]["pgd100_acc"] <= result["best"]["clean_acc"] <= 1.0
    assert len(lines) == 1 and "best (epoch 1)" in lines[0]


def test_eval_loads_the_test_split_at_the_models_size(folder_run, tmp_path):
    from nuat.eval.evaluate import EvalOptions, evaluate
    from nuat.eval.registry import Settings
    from nuat.eval.targets import load_test_data, resolve_targets

    root, run = folder_run
    targets = resolve_targets(run)
    assert load_test_data("imagefolder", root, targets).image_shape == (3, SIDE, SIDE)
    options = EvalOptions(attacks="clean,fgsm", dataset="imagefolder", settings=Settings(eps=8 / 255, pgd_step=0.01),
                          eps_text="8/255", data_dir=str(root), batch_size=4, progress=False)
    result = evaluate(targets[0], options, tmp_path / "ev")
    assert result["n"] == 4 and [r["name"] for r in result["attacks"]] == ["clean", "fgsm"]


def test_data_of_another_size_is_refused_before_anything_runs(folder_run, tmp_path):
    # sanity (and evaluate with data given) get the split from the caller: check it fits the model
    from nuat.data import load_dataset
    from nuat.eval.sanity import SanityConfig, run_sanity
    from nuat.eval.targets import resolve_targets

    root, run = folder_run
    [target] = resolve_targets(run)
    native = load_dataset("imagefolder", "test", root)  # the first test image's size: 50x50
    assert native.image_shape == (3, 50, 50)
    with pytest.raises(UsageError, match=r"takes 30x30 images, the test images are 50x50"):
        run_sanity(target, native, SanityConfig(eps=8 / 255, n=4, progress=False), tmp_path / "s",
                   dataset="imagefolder", eps_text="8/255")
    assert not (tmp_path / "s").exists()
