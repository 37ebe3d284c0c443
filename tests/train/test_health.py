"""Divergence stop and catastrophic-overfitting detection / rollback."""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from nuat.cli import main
from nuat.methods import METHODS, register_method
from nuat.methods.base import Method, MethodDefaults, StepOutput, accuracy_sums
from nuat.train import loop
from nuat.train.config import TrainConfig
from nuat.train.health import is_collapse
from nuat.train.schedules import lambda_ramp
from nuat.train.state import load_latest_state, read_state, save_state


class NaNAt(Method):
    """Clean training whose loss turns NaN at a given iteration (fault injection)."""

    def __init__(self, nan_at: int = 5, report_loss: bool = True):
        super().__init__(nan_at=nan_at, report_loss=report_loss)
        self.nan_at = nan_at
        self.report_loss = report_loss

    def loss(self, model, x, y, ctx):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if ctx.iteration >= self.nan_at:
            loss = loss * float("nan")
        sums = accuracy_sums(logits, None, y)
        if self.report_loss:  # a custom method may leave the "loss" sum out: the loop adds it
            sums["loss"] = loss.detach() * y.shape[0]
        return StepOutput(loss=loss, sums=sums)


@pytest.fixture
def nan_method():
    """``test-nan`` in the registry for one test only (other modules list every registered method)."""
    register_method("test-nan", build=NaNAt, defaults=MethodDefaults(), summary="fault injection",
                    hparams={"nan_at": 25, "report_loss": True})
    yield "test-nan"
    del METHODS["test-nan"]

COMMON = ["--dataset", "mnist", "--eps", "0.3", "--train-limit", "1000", "--batch-size", "100", "--val-per-class", "10",
          "--final-eval", "0", "--no-progress"]


@pytest.mark.parametrize("report_loss", [True, False])
def test_forced_nan_stops_training_and_keeps_last_good_checkpoint(real_data_dir, tmp_path, capsys, nan_method,
                                                                  report_loss):
    METHODS["test-nan"].hparams["report_loss"] = report_loss
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
    (0.1, 0.80, 0.04, 0.85, True),    # a best of exactly 10% counts as robust
    (0.6, 0.80, 0.30, 0.85, False),   # exactly half the best: not below it
    (0.6, 0.80, 0.29, 0.79, True),    # clean fell by less than the slack
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


def _tiny_config(data_dir, out, **overrides):
    """6 iterations per epoch on 300 MNIST images: a rollback test in about a second per run."""
    fields = dict(dataset="mnist", model="small-cnn", method="nuat", eps=0.3, epochs=3, batch_size=50, lr=0.05,
                  data_dir=str(data_dir), out=str(out), lam_max=4.5, ramp_fraction=0.9, train_limit=300,
                  val_per_class=3, final_eval=0, progress=False, on_collapse="rollback")
    return TrainConfig(**{**fields, **overrides})


def _collapse_at(monkeypatch, *calls):
    """Validation reports a collapse at the given validation calls (1-based) and robust >= 0.5 otherwise."""
    real_validate = loop.validate
    count = {"n": 0}

    def fake_validate(model, data, **kw):
        clean, robust = real_validate(model, data, **kw)
        count["n"] += 1
        return (0.9, 0.01) if count["n"] in calls else (clean, max(robust, 0.5))

    monkeypatch.setattr(loop, "validate", fake_validate)
    monkeypatch.setattr(loop, "_draw_curves", lambda run, force=False: None)  # 0.6 s a drawing, not tested here


class Killed(Exception):
    """A hard kill: nothing is saved."""


def test_kill_during_redone_epoch_resumes_it_with_the_remedy(real_data_dir, tmp_path, monkeypatch):
    _collapse_at(monkeypatch, 3)
    loop.train(_tiny_config(real_data_dir, tmp_path / "ref", save_every=2))

    # the same run killed in the redone epoch 3 (iterations 12-17) after its state at iteration 14
    _collapse_at(monkeypatch, 3)
    real_step = loop._step

    def step(run, *args):
        real_step(run, *args)
        if run.remedy_active and run.iteration == 15:
            raise Killed

    monkeypatch.setattr(loop, "_step", step)
    out = tmp_path / "run"
    with pytest.raises(Killed):
        loop.train(_tiny_config(real_data_dir, out, save_every=2))
    # the first attempt's states (iterations 16, 18) are gone; the newest is the redone epoch's
    assert [p.name for p in sorted((out / "state").glob("state-*"))][-1] == "state-0000000014.safetensors"

    monkeypatch.setattr(loop, "_step", real_step)
    _collapse_at(monkeypatch)  # the redone epoch does not collapse, as in the reference
    loop.train(_tiny_config(real_data_dir, out, save_every=2), resume_run=True)
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r.get("remedy")) for r in records] == [(1, None), (2, None), (3, True)]
    assert records[2]["input_backward_per_example"] == pytest.approx(2.0)  # the whole epoch two-step
    ref, got = load_file(str(tmp_path / "ref" / "last.safetensors")), load_file(str(out / "last.safetensors"))
    assert all(ref[k].equal(got[k]) for k in ref)


def test_kill_between_an_epochs_two_state_writes_still_rolls_back_the_next_collapse(real_data_dir, tmp_path,
                                                                                     monkeypatch):
    """An epoch end writes a numbered state and the healthy one. Numbered first, a kill between
    them left the healthy state an epoch behind, and the resumed run kept a collapsed epoch 3
    ("the last healthy state is from the end of epoch 1, not 2: continuing") that the
    uninterrupted run rolled back. Healthy first, the resume replays epoch 2 and rolls back."""
    from nuat.train import resume

    real_validate, real_train_epoch, now = loop.validate, loop.train_epoch, {}

    def train_epoch(run, epoch, *args):
        now.update(epoch=epoch, remedy=run.remedy_active)
        return real_train_epoch(run, epoch, *args)

    def validate(model, data, **kw):  # the first attempt at epoch 3 collapses, in every run
        clean, robust = real_validate(model, data, **kw)
        return (0.9, 0.01) if now == {"epoch": 2, "remedy": False} else (clean, max(robust, 0.5))

    monkeypatch.setattr(loop, "train_epoch", train_epoch)
    monkeypatch.setattr(loop, "validate", validate)
    monkeypatch.setattr(loop, "_draw_curves", lambda run, force=False: None)
    loop.train(_tiny_config(real_data_dir, tmp_path / "ref"))

    real_save, writes = resume.save, []

    def save(run, epoch, progress, *, name=None):
        if epoch == 2 and progress.batch == 0:  # the end of epoch 2: killed after its first write
            writes.append(name)
            if len(writes) == 2:
                raise Killed
        return real_save(run, epoch, progress, name=name)

    monkeypatch.setattr(resume, "save", save)
    out = tmp_path / "run"
    with pytest.raises(Killed):
        loop.train(_tiny_config(real_data_dir, out))
    monkeypatch.setattr(resume, "save", real_save)
    loop.train(_tiny_config(real_data_dir, out), resume_run=True)
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r.get("remedy")) for r in records] == [(1, None), (2, None), (3, True)]
    ref, got = load_file(str(tmp_path / "ref" / "last.safetensors")), load_file(str(out / "last.safetensors"))
    assert all(ref[k].equal(got[k]) for k in ref)


def test_saving_a_state_discards_later_states_of_an_abandoned_attempt(tmp_path):
    tensors = {"w": torch.zeros(2)}
    for iteration in (12, 14, 16):
        save_state(tmp_path, iteration, tensors, {})
    save_state(tmp_path, 12, tensors, {"after": "rollback"})  # a rollback to iteration 12
    save_state(tmp_path, 14, tensors, {})
    assert sorted(p.name for p in tmp_path.glob("state-*")) == ["state-0000000012.safetensors",
                                                               "state-0000000014.safetensors"]
    assert load_latest_state(tmp_path)[0].name == "state-0000000014.safetensors"


def test_only_the_newest_two_numbered_states_are_kept(tmp_path):
    tensors = {"w": torch.zeros(2)}
    save_state(tmp_path, 3, tensors, {}, name="healthy")
    for iteration in (1, 2, 3, 4, 5):
        save_state(tmp_path, iteration, tensors, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["healthy.safetensors", "state-0000000004.safetensors",
                                                          "state-0000000005.safetensors"]


def test_a_failed_state_write_keeps_the_later_states(tmp_path, monkeypatch):
    # a kill while the rollback's state is written must leave a state to resume from: the
    # abandoned attempt's states go only once the new one is on disk
    import nuat.train.state as state_module

    tensors = {"w": torch.zeros(2)}
    for iteration in (14, 16):
        save_state(tmp_path, iteration, tensors, {})

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(state_module, "save_file", killed)
    with pytest.raises(KeyboardInterrupt):
        save_state(tmp_path, 12, tensors, {"after": "rollback"})
    assert load_latest_state(tmp_path)[0].name == "state-0000000016.safetensors"


def test_no_rollback_to_a_state_older_than_the_previous_epoch(real_data_dir, tmp_path, monkeypatch, capsys):
    # epoch 3 collapses, so does its redo (kept, with a warning), then epoch 4: the healthy state is
    # from the end of epoch 2, and restoring it would discard the logged epoch 3
    _collapse_at(monkeypatch, 3, 4, 5)
    out = tmp_path / "run"
    summary = loop.train(_tiny_config(real_data_dir, out, epochs=4))
    assert "the last healthy state is from the end of epoch 2, not 3: continuing" in capsys.readouterr().out
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["collapse"]) for r in records] == [(1, False), (2, False), (3, True), (4, True)]
    assert [r["lambda"] for r in records] == pytest.approx([lambda_ramp(e, 4, lam_max=4.5, ramp_fraction=0.9)
                                                            for e in range(4)])
    _, info = read_state(sorted((out / "state").glob("state-*"))[-1])
    assert info["iteration"] == summary["iterations"] == 24 and info["metrics_lines"] == 4


def test_rollback_of_a_method_without_a_remedy_warns_and_continues(real_data_dir, tmp_path, monkeypatch, capsys):
    # FGSM-AT, the method the paper shows collapsing, has no remedy: redoing its epoch unchanged
    # would collapse again, so the run keeps the epoch, says why, and goes on as with --on-collapse warn
    _collapse_at(monkeypatch, 2)
    out = tmp_path / "run"
    loop.train(_tiny_config(real_data_dir, out, method="fgsm-at", epochs=2, lam_max=0.0, ramp_fraction=1.0))
    text = capsys.readouterr().out
    assert "catastrophic overfitting suspected in epoch 2" in text and "no remedy for this method: continuing" in text
    assert "rolled back" not in text
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["collapse"], r.get("remedy")) for r in records] == [(1, False, None), (2, True, None)]


def test_a_corrupt_healthy_state_is_not_rolled_back_to(real_data_dir, tmp_path, monkeypatch, capsys):
    # the healthy state's tensors are damaged (its header intact) before the collapse is seen:
    # the rollback is refused with a reason instead of failing inside the restore
    _collapse_at(monkeypatch, 3)
    out = tmp_path / "run"
    collapse_validate = loop.validate

    def damage_then_validate(model, data, **kw):
        healthy = out / "state" / "healthy.safetensors"
        if healthy.exists() and len((out / "metrics.jsonl").read_text().splitlines()) == 2:  # epoch 3's check
            raw = bytearray(healthy.read_bytes())
            raw[-8:] = bytes(8) if raw[-8:] != bytes(8) else b"\x01" * 8  # tensor data sit at the end
            healthy.write_bytes(bytes(raw))
        return collapse_validate(model, data, **kw)

    monkeypatch.setattr(loop, "validate", damage_then_validate)
    loop.train(_tiny_config(real_data_dir, out, epochs=3))
    log = capsys.readouterr().out
    assert "is unreadable (content hash does not match" in log and "rolled back" not in log
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["collapse"]) for r in records] == [(1, False), (2, False), (3, True)]
