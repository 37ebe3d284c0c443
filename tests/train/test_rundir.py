"""The run directory: --overwrite starts clean, a final evaluation that cannot work is refused
before training, and without a validation split the last epoch is the best."""

import json

from PIL import Image
from safetensors.torch import load_file

import nuat
from nuat.cli import main
from nuat.train import loop
from nuat.train.config import TrainConfig
from nuat.train.curves import best_epoch
from nuat.train.state import read_state

TINY = ["--dataset", "mnist", "--method", "nuat", "--eps", "0.3", "--epochs", "1", "--train-limit", "100",
        "--batch-size", "50", "--val-per-class", "2", "--final-eval", "0", "--no-progress"]


def test_overwrite_removes_the_earlier_runs_outputs_but_not_other_files(real_data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "_draw_curves", lambda run, force=False: None)
    out = tmp_path / "run"
    (out / "state").mkdir(parents=True)
    stale = ["best-ema.safetensors", "last-ema.safetensors", "summary.json", "curves.png", ".config.json.x1.tmp",
             "state/state-0000009999.safetensors", "state/healthy.safetensors"]
    for name in stale:  # an earlier -WA run, longer than this one
        (out / name).write_text("earlier run")
    (out / "notes.txt").write_text("mine")
    (out / "state" / "notes.txt").write_text("mine too")
    code = main(["train", *TINY, "--save-every", "1", "--data-dir", str(real_data_dir), "--out", str(out),
                 "--overwrite"])
    assert code == 0
    assert not any((out / name).exists() for name in stale if name not in ("summary.json", "state/healthy.safetensors"))
    assert json.loads((out / "summary.json").read_text())["train_size"] == 100
    assert read_state(out / "state" / "healthy.safetensors")[1]["iteration"] == 2
    states = sorted(p.name for p in (out / "state").glob("state-*"))
    assert states == ["state-0000000001.safetensors", "state-0000000002.safetensors"]  # none pruned by old ones
    assert (out / "notes.txt").read_text() == "mine" and (out / "state" / "notes.txt").read_text() == "mine too"


def _image_folder(root, split, classes):
    for i, name in enumerate(classes):
        folder = root / "imagefolder" / split / name
        folder.mkdir(parents=True)
        for j in range(4):
            Image.new("RGB", (16, 16), (40 * i, 60 * j, 100)).save(folder / f"{j}.png")


def test_test_split_with_other_classes_is_refused_before_training(tmp_path, capsys):
    _image_folder(tmp_path, "train", ["cat", "dog", "fox"])
    _image_folder(tmp_path, "test", ["cat", "dog"])
    out = tmp_path / "run"
    code = main(["train", "--dataset", "imagefolder", "--model", "small-cnn", "--method", "erm", "--epochs", "1",
                 "--batch-size", "4", "--val-per-class", "1", "--final-eval", "10", "--no-progress",
                 "--data-dir", str(tmp_path), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "imagefolder test split" in err and "test classes differ" in err and "missing ['fox']" in err
    assert not out.exists()  # refused before anything was written


def test_without_validation_the_last_epoch_is_best(real_data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "_draw_curves", lambda run, force=False: None)
    out = tmp_path / "run"
    loop.train(TrainConfig(dataset="mnist", model="small-cnn", method="nuat", eps=0.3, epochs=2, batch_size=50,
                           lr=0.05, data_dir=str(real_data_dir), out=str(out), train_limit=100, val_per_class=0,
                           final_eval=0, progress=False))
    assert nuat.load_model(out / "best.safetensors").checkpoint_metadata["epoch"] == 2
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["val_ifgsm7_acc"] != records[0]["val_ifgsm7_acc"]  # NaN: no validation split
    assert best_epoch(records) == 2  # the epoch curves.png marks


def test_clear_run_outputs_removes_every_run_file_and_only_those(tmp_path):
    from nuat.train.rundir import clear_run_outputs

    names = ["config.json", "metrics.jsonl", "curves.png", "summary.json", "best.safetensors", "last.safetensors",
             "best-ema.safetensors", "last-ema.safetensors", ".summary.json.abc.tmp"]
    for name in names + ["state/state-0000000007.safetensors", "state/healthy.safetensors"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    mine = ["notes.txt", "state-of-the-art.safetensors", "best.safetensors.bak"]
    for name in mine:
        (tmp_path / name).write_text("mine")
    removed = clear_run_outputs(tmp_path)
    assert len(removed) == len(names) + 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(mine)  # state/ emptied and removed


def test_signal_during_final_evaluation_stops_with_the_resume_hint(real_data_dir, tmp_path, monkeypatch, capsys):
    """SIGTERM in the final test evaluation (after the last state was saved) exits with 128 + 15 and
    the resume hint, leaves the run unfinished, and the resumed run only evaluates."""
    import os
    import signal

    from nuat.train import final_eval

    monkeypatch.setattr(loop, "_draw_curves", lambda run, force=False: None)
    real_evaluation = final_eval.final_evaluation

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered at the next bytecode, inside the evaluation
        raise AssertionError("the signal did not stop the evaluation")

    out = tmp_path / "run"
    tiny = list(TINY)
    tiny[tiny.index("--final-eval") + 1] = "20"
    args = ["train", *tiny, "--data-dir", str(real_data_dir), "--out", str(out)]
    monkeypatch.setattr(final_eval, "final_evaluation", signalled)
    before = signal.getsignal(signal.SIGTERM)
    assert main(args) == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before  # handlers restored
    err = capsys.readouterr().err
    assert f"resume with: nuat train --resume {out}" in err and "Traceback" not in err
    assert not (out / "summary.json").exists() and (out / "best.safetensors").exists()
    weights = (out / "last.safetensors").read_bytes()

    monkeypatch.setattr(final_eval, "final_evaluation", real_evaluation)
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["n"] == 20 and "clean_acc" in summary["test"]["best"]
    assert (out / "last.safetensors").read_bytes() == weights  # no training after the resume


def test_second_signal_stops_at_once_and_the_run_resumes_bitwise(real_data_dir, tmp_path, monkeypatch, capsys):
    """A second SIGTERM does not wait for the step to end: exit 128 + 15 with its own line, and the
    run resumed from the state saved before ends with the weights of an uninterrupted run."""
    import os
    import signal

    monkeypatch.setattr(loop, "_draw_curves", lambda run, force=False: None)
    args = ["train", *TINY, "--epochs", "2", "--save-every", "1", "--data-dir", str(real_data_dir)]
    assert main([*args, "--out", str(tmp_path / "ref")]) == 0
    real_step, calls = loop._step, []

    def twice_signalled(*a, **k):
        calls.append(1)
        if len(calls) == 3:  # epoch 2's first step: the first signal would let it finish, the second not
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("the second signal did not stop the step")
        return real_step(*a, **k)

    out = tmp_path / "run"
    monkeypatch.setattr(loop, "_step", twice_signalled)
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "stopped at once by a second signal" in err and f"resume with: nuat train --resume {out}" in err
    assert not (out / "summary.json").exists()
    monkeypatch.setattr(loop, "_step", real_step)
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    ref, got = load_file(str(tmp_path / "ref" / "last.safetensors")), load_file(str(out / "last.safetensors"))
    assert ref.keys() == got.keys() and all(ref[k].equal(got[k]) for k in ref)


def test_a_corrupt_image_found_while_training_leaves_nothing_or_says_how_to_continue(tmp_path, capsys):
    """An image folder is decoded as training reads it, so a corrupt image fails after the run folder
    was made. Before this, the folder kept config.json and metrics.jsonl, and the same command was
    then refused (--out holds files). Now a run with no saved state leaves nothing; one with states
    (here: a corrupt test image, found by the final evaluation) says how to continue."""
    _image_folder(tmp_path, "train", ["cat", "dog"])
    _image_folder(tmp_path, "test", ["cat", "dog"])
    out = tmp_path / "run"
    args = ["train", "--dataset", "imagefolder", "--model", "small-cnn", "--method", "erm", "--epochs", "1",
            "--batch-size", "3", "--val-per-class", "0", "--final-eval", "4", "--no-progress",
            "--data-dir", str(tmp_path), "--out", str(out)]
    for split in ("train", "test"):
        # a new training image; the second test image (the final evaluation reads the first 4)
        broken = tmp_path / "imagefolder" / split / "dog" / ("9.png" if split == "train" else "0.png")
        broken.write_text("junk")
        capsys.readouterr()
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(broken) in err and "Traceback" not in err, err
        Image.new("RGB", (16, 16), (1, 2, 3)).save(broken, format="PNG")
        if split == "train":
            assert not out.exists() and "--resume" not in err
            continue
        assert f"the run in {out} has started: fix the data, then continue it with nuat train --resume {out}" in err
        assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_size"] == 9 and summary["test"]["n"] == 4
