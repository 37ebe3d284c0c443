"""Bad settings of a run are refused before any work: the device, a run's saved config.json."""

import json

import pytest
import torch

from nuat.cli import main
from nuat.errors import UsageError
from nuat.train.config import TrainConfig, load_run_config
from nuat.train.device import resolve_device

BASE = dict(dataset="mnist", model="small-cnn", method="nuat", eps=0.3, epochs=2, batch_size=50, lr=0.05)


@pytest.mark.parametrize("name,problem", [("bogus", "is not a device"), ("cuda:x", "is not a device"),
                                          ("cuda:99", "is not available"), ("cpu:1", "is not available"),
                                          ("xpu", "is not available")])
def test_unusable_device_is_a_usage_error_naming_the_allowed_values(name, problem):
    with pytest.raises(UsageError, match=problem) as err:
        TrainConfig(**BASE, device=name).validate()
    message = str(err.value)
    assert f"--device {name!r}" in message and "auto, cpu" in message and "\n" not in message


def test_cuda_without_a_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match=r"--device 'cuda' is not available on this machine; choose one of: auto, cpu"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")


def test_train_with_a_bad_device_exits_2_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "mnist", "--method", "nuat", "--epochs", "1", "--device", "bogus",
                 "--data-dir", str(tmp_path / "no-data"), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "--device 'bogus' is not a device" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("text,expected", [
    ("{", "cannot read the run configuration"),
    ("[1, 2]", "is not a JSON object"),
    (json.dumps({k: v for k, v in BASE.items() if k != "lr"}), "lacks lr"),
    (json.dumps({**BASE, "epochs": 0}), "is invalid: --epochs 0 is invalid"),
    (json.dumps({**BASE, "lr": "fast"}), "is invalid"),
    (json.dumps({**BASE, "averages": [0.9]}), "is invalid"),
    # hand-edited types, each a traceback or a message without the field's name before
    (json.dumps({**BASE, "method_hparams": "zzz"}), r"method_hparams 'zzz' is not of type dict\[str, Any\]"),
    (json.dumps({**BASE, "seed": "zzz"}), "seed 'zzz' is not of type int"),
    (json.dumps({**BASE, "data_dir": 5}), r"data_dir 5 is not of type str \| None"),
    (json.dumps({**BASE, "lr": "0.1"}), "lr '0.1' is not of type float"),
    (json.dumps({**BASE, "val_per_class": "3"}), "val_per_class '3' is not of type int"),
    (json.dumps({**BASE, "lr_drops": [0.5, "x"]}), r"lr_drops \[0.5, 'x'\] is not of type list\[float\]"),
    (json.dumps({**BASE, "compile": 1}), "compile 1 is not of type bool"),
    (json.dumps({**BASE, "compile_mode": "max-autotune", "compile": True}),
     "--compile-mode 'max-autotune' is invalid; choose one of: default, reduce-overhead"),
    (json.dumps({**BASE, "compile_mode": "reduce-overhead"}), "needs compile: true"),
    (json.dumps({**BASE, "epochs": True}), "epochs True is not of type int"),
])
def test_broken_run_config_is_a_usage_error_naming_the_file(tmp_path, text, expected):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=expected) as err:
        load_run_config(path, out=str(tmp_path), device="cpu")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_run_config_loads_with_overrides(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**BASE, "device": "cuda:7", "commit": "abc", "train_size": 300}))  # + run facts
    cfg = load_run_config(path, out=str(tmp_path), progress=False, device="cpu")
    assert (cfg.epochs, cfg.device, cfg.out, cfg.progress) == (2, "cpu", str(tmp_path), False)
    assert cfg.compile_mode == "default"  # runs saved before --compile-mode existed
    with pytest.raises(UsageError, match="^--device 'bogus'"):  # the command line's value, not the file's
        load_run_config(path, device="bogus")
    with pytest.raises(UsageError, match="cannot read the run configuration"):
        load_run_config(tmp_path / "missing.json")


@pytest.mark.parametrize("field,value,flag", [
    ("train_limit", 0, "--train-limit"), ("train_limit", -5, "--train-limit"), ("epochs", 0, "--epochs"),
    ("batch_size", 0, "--batch-size"), ("val_steps", 0, "--val-steps"), ("lr_up", 0.0, "--lr-up"),
    ("save_every", -1, "--save-every"), ("final_eval", -1, "--final-eval"), ("val_per_class", -1, "--val-per-class"),
])
def test_values_at_the_edge_of_their_range_are_refused(field, value, flag):
    with pytest.raises(UsageError, match=flag):
        TrainConfig(**{**BASE, field: value}).validate()
    assert TrainConfig(**BASE, train_limit=1, save_every=0, final_eval=0, val_per_class=0).validate()
