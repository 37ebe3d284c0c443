"""The loop on a tiny image folder, in process: seeds, train mode, weight averages after the
step, images/s, and the best-checkpoint rule."""

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import nuat
from nuat.methods import METHODS, register_method
from nuat.methods.base import Method, MethodDefaults, StepOutput, accuracy_sums
from nuat.models import build_model
from nuat.train import loop
from nuat.train.config import TrainConfig


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """imagefolder/train: 3 classes x 8 noisy 8 x 8 PNGs (2 per class go to validation)."""
    root = tmp_path_factory.mktemp("tiny")
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 8), ("test", 1)):
        for c in range(3):
            folder = root / "imagefolder" / split / f"c{c}"
            folder.mkdir(parents=True)
            for k in range(n):
                pixels = (torch.rand(8, 8, 3, generator=g) * 120 + 60 * c).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(folder / f"{k}.png")
    return root


def _cfg(root, out, **kw):
    base = dict(dataset="imagefolder", model="small-cnn", method="erm", eps=0.1, epochs=2, batch_size=4, lr=0.05,
                data_dir=str(root), out=str(out), val_per_class=2, val_steps=1, final_eval=0, progress=False)
    return TrainConfig(**{**base, **kw})



def test_seed_fixes_the_initial_weights_and_the_data_order(tiny_folder, tmp_path):
    a, b, c = (loop.build_run(_cfg(tiny_folder, tmp_path / "r", seed=s)) for s in (3, 3, 4))
    weights = lambda r: torch.cat([p.detach().flatten() for p in r.model.parameters()])  # noqa: E731
    assert torch.equal(weights(a), weights(b)) and not torch.equal(weights(a), weights(c))
    first = [torch.cat([x.flatten(1) for x, _ in r.train_loader]) for r in (a, b, c)]
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0], first[2])


class _Recorder(Method):
    """Clean training that records the model's mode and the step's position at every step, and
    fails (as a kill would stop it) at iteration ``fail_at``."""

    modes: list = []
    steps: list = []
    fail_at: int | None = None
    nan_from: int | None = None

    def loss(self, model, x, y, ctx):
        if ctx.iteration == _Recorder.fail_at:
            raise RuntimeError("killed")
        _Recorder.modes.append(model.training)
        _Recorder.steps.append((ctx.epoch, ctx.batch_index, ctx.iteration))
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if _Recorder.nan_from is not None and ctx.iteration >= _Recorder.nan_from:
            loss = loss * float("nan")
        sums = accuracy_sums(logits, None, y)
        sums["loss"] = loss.detach() * y.shape[0]
        sums["n"] = torch.tensor(float(y.shape[0]))
        return StepOutput(loss=loss, sums=sums)


@pytest.fixture
def recorder():
    register_method("test-recorder", build=_Recorder, defaults=MethodDefaults(), summary="records modes")
    _Recorder.modes, _Recorder.steps, _Recorder.fail_at, _Recorder.nan_from = [], [], None, None
    yield "test-recorder"
    del METHODS["test-recorder"]


def test_steps_train_mode_average_after_the_step_and_images_per_s(tiny_folder, tmp_path, monkeypatch, recorder):
    monkeypatch.setattr(loop, "_draw_curves", lambda run, force=False: None)
    out = tmp_path / "run"
    # tau 0: the average is the model itself after every optimiser step
    loop.train(_cfg(tiny_folder, out, method=recorder, averages={"ema": 0.0}, scale_averages=False))
    assert _Recorder.modes and all(_Recorder.modes)  # every step in train mode, after validation too
    last, ema = nuat.load_model(out / "last.safetensors"), nuat.load_model(out / "last-ema.safetensors")
    for (name, p), q in zip(last.state_dict().items(), ema.state_dict().values()):
        assert torch.equal(p, q), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(_Recorder.modes) == 2 * 5  # 18 training images, batch 4: 5 steps per epoch
    for r in records:  # images / s times seconds: the epoch's 18 training images
        assert r["images_per_s"] * r["seconds"] == pytest.approx(18)


def test_best_checkpoint_is_the_first_epoch_with_the_highest_validation_score(tmp_path):
    torch.manual_seed(0)
    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
    run = SimpleNamespace(out=tmp_path, model=model, averages={}, info={"method": "erm"}, best={})
    saved = []
    for epoch, robust in enumerate([0.5, 0.5, 0.4, 0.6, 0.6]):
        saved.append(loop.save_epoch(run, epoch, {"": {"clean": 0.9, "robust": robust}}))
    assert saved == [["best"], [], [], ["best"], []]  # a tie is no improvement
    meta = nuat.load_model(tmp_path / "best.safetensors").checkpoint_metadata
    assert meta["epoch"] == 4 and meta["val_ifgsm7_acc"] == 0.6
    assert nuat.load_model(tmp_path / "last.safetensors").checkpoint_metadata["epoch"] == 5


def test_a_resumed_epoch_continues_its_batch_and_iteration_count(tiny_folder, tmp_path, monkeypatch, recorder):
    """Killed after 3 steps (states saved every step), resumed: the method sees the same
    (epoch, batch index, iteration) sequence as an uninterrupted run (alternating methods
    choose by the batch index)."""
    monkeypatch.setattr(loop, "_draw_curves", lambda run, force=False: None)
    cfg = _cfg(tiny_folder, tmp_path / "run", method=recorder, save_every=1)
    _Recorder.fail_at = 3
    with pytest.raises(RuntimeError, match="killed"):
        loop.train(cfg)
    _Recorder.fail_at = None
    loop.train(cfg, resume_run=True)
    assert _Recorder.steps == [(e, b, 5 * e + b) for e in range(2) for b in range(5)]


def test_restoring_a_state_restores_the_global_generators(tiny_folder, tmp_path):
    import random

    import numpy as np

    from nuat.train import resume
    from nuat.train.progress import EpochProgress

    saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:  # the test moves the process's global generators: put them back for the tests after it
        run = loop.build_run(_cfg(tiny_folder, tmp_path / "run"))
        path = resume.save(run, 0, EpochProgress())
        draws = lambda: (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random())  # noqa: E731
        first = draws()
        resume.restore_file(run, path)
        assert draws() == first
    finally:
        torch.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])


def test_no_state_is_saved_after_a_non_finite_loss(tiny_folder, tmp_path, monkeypatch, recorder):
    """--save-every saves mid-epoch only while the loss is finite: the newest state is the last
    good one, so a resume never starts from NaN weights."""
    from nuat.train.state import load_latest_state

    monkeypatch.setattr(loop, "_draw_curves", lambda run, force=False: None)
    _Recorder.nan_from = 3
    out = tmp_path / "run"
    with pytest.raises(loop.TrainingDiverged):
        loop.train(_cfg(tiny_folder, out, method=recorder, save_every=1))
    path, tensors, info = load_latest_state(out / "state")
    assert info["iteration"] == 3
    assert all(torch.isfinite(t).all() for k, t in tensors.items() if k.startswith("model/"))
