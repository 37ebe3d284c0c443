"""Divergence stop and catastrophic-overfitting detection / rollback."""

import json

import pytest
import torch
import torch.nn.functional as F

from nuat.cli import main
from nuat.methods import METHODS, register_method
from nuat.methods.base import Method, MethodDefaults, StepOutput, accuracy_sums
from nuat.train import loop
from nuat.train.health import is_collapse


class NaNAt(Method):
    """Clean training whose loss turns NaN at a given iteration (fault injection)."""

    def __init__(self, nan_at: int = 5):
        super().__init__(nan_at=nan_at)
        self.nan_at = nan_at

    def loss(self, model, x, y, ctx):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if ctx.iteration >= self.nan_at:
            loss = loss * float("nan")
        sums = accuracy_sums(logits, None, y)
        sums["loss"] = loss.detach() * y.shape[0]
        return StepOutput(loss=loss, sums=sums)


@pytest.fixture
def nan_method():
    """``test-nan`` in the registry for one test only (other modules list every registered method)."""
    register_method("test-nan", build=NaNAt, defaults=MethodDefaults(), summary="fault injection",
                    hparams={"nan_at": 25})
    yield "test-nan"
    del METHODS["test-nan"]

COMMON = ["--dataset", "mnist", "--eps", "0.3", "--train-limit", "1000", "--batch-size", "100", "--val-per-class", "10",
          "--final-eval", "0", "--no-progress"]


def test_forced_nan_stops_training_and_keeps_last_good_checkpoint(real_data_dir, tmp_path, capsys, nan_method):
    out = tmp_path / "run"
    code = main(["train", "--method", "test-nan", "--epochs", "4", "--data-dir", str(real_data_dir),
                 "--out", str(out), *COMMON])
    assert code == 3
    err = capsys.readouterr().err
    assert "diverged" in err and err.count("\n") == 1
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # 10 iterations per epoch: NaN from iteration 25, in epoch 3
    from safetensors.torch import load_file

    weights = load_file(str(out / "last.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert not (out / "summary.json").exists()


@pytest.mark.parametrize("best,prev_clean,robust,clean,expected", [
    (0.6, 0.80, 0.10, 0.85, True),    # robust collapsed, clean rose: catastrophic overfitting
    (0.6, 0.80, 0.40, 0.85, False),   # a dip, not a collapse
    (0.6, 0.80, 0.10, 0.50, False),   # everything fell: not the overfitting pattern
    (0.05, 0.80, 0.0, 0.85, False),   # never robust: nothing to collapse
    (None, None, 0.1, 0.9, False),    # first epoch
])
def test_collapse_rule(best, prev_clean, robust, clean, expected):
    assert is_collapse(best, prev_clean, robust, clean) is expected


def test_rollback_redoes_the_epoch_with_the_remedy(real_data_dir, tmp_path, monkeypatch, capsys):
    real_validate = loop.validate
    calls = {"n": 0}

    def fake_validate(model, data, **kw):
        clean, robust = real_validate(model, data, **kw)
        calls["n"] += 1
        # epochs 1-2 honest; the first attempt at epoch 3 looks collapsed
        return (0.9, 0.01) if calls["n"] == 3 else (clean, max(robust, 0.5))

    monkeypatch.setattr(loop, "validate", fake_validate)
    out = tmp_path / "run"
    code = main(["train", "--method", "nuat", "--epochs", "3", "--on-collapse", "rollback",
                 "--data-dir", str(real_data_dir), "--out", str(out), *COMMON])
    assert code == 0
    text = capsys.readouterr().out
    assert "catastrophic overfitting suspected in epoch 3" in text and "rolled back to the end of epoch 2" in text
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[2].get("remedy") is True and not records[2]["collapse"]
    # the remedy is NuAT2's attack: two attack steps per example in the redone epoch
    assert records[2]["input_backward_per_example"] == pytest.approx(2.0)
    assert records[1]["input_backward_per_example"] == pytest.approx(1.0)
