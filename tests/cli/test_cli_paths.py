"""--out and --device are checked before any work: a bad one is one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from nuat.checkpoints import save_model
from nuat.cli import main
from nuat.models import build_model
from nuat_testing import run_main


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    path = tmp_path / "ck.safetensors"
    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
    save_model(path, model, dataset="mnist", eps=0.3, classes=[str(i) for i in range(10)])
    return path


def _one_line(err: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _commands(data: str, checkpoint: Path) -> dict[str, list[str]]:
    """Each command with cheap settings; ``--out`` is appended by the tests."""
    return {
        "train": ["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "1", "--train-limit", "64",
                  "--final-eval", "0", "--no-progress"],
        "eval": ["eval", str(checkpoint), "--data-dir", data, "--n", "8", "--attacks", "clean", "--no-progress"],
        "sanity": ["sanity", str(checkpoint), "--data-dir", data, "--n", "8", "--no-progress"],
        "bench": ["bench", "--methods", "erm", "--data-dir", data, "--steps", "1", "--trials", "1", "--warmup", "0",
                  "--batch-size", "8"],
    }


def test_out_below_a_file_is_refused_before_any_work(tmp_path, checkpoint, real_data_dir, capsys):
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("x")
    before = _listing(tmp_path)
    for name, argv in _commands(str(real_data_dir), checkpoint).items():
        code, out, err = run_main(capsys, argv + ["--out", str(blocker / "r")])
        assert code == 2, (name, err)
        _one_line(err)
        assert f"nuat {name}: error: --out {blocker / 'r'}" in err and "blocker.txt is a file" in err, err
        assert "bench: building" not in out  # refused before the work, not after it
    assert _listing(tmp_path) == before


def test_out_that_is_a_file_or_a_folder_of_the_wrong_kind(tmp_path, checkpoint, real_data_dir, capsys):
    commands = _commands(str(real_data_dir), checkpoint)
    before = _listing(tmp_path)
    for name in ("train", "eval", "sanity"):  # an output folder that exists as a file
        code, _, err = run_main(capsys, commands[name] + ["--out", str(checkpoint)])
        assert code == 2, (name, err)
        _one_line(err)
        assert "exists and is not a folder" in err, err
    code, _, err = run_main(capsys, commands["bench"] + ["--out", str(tmp_path)])  # bench's --out is a file prefix
    assert code == 2 and "is a folder; give a path without suffix" in err, err
    assert _listing(tmp_path) == before


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc, a folder nobody can write in")
def test_out_in_a_folder_that_cannot_be_written(tmp_path, checkpoint, real_data_dir, capsys):
    for name, argv in _commands(str(real_data_dir), checkpoint).items():
        code, out, err = run_main(capsys, argv + ["--out", "/proc/nuat-out-check/run"])
        assert code == 2, (name, err)
        _one_line(err)
        assert "cannot write in /proc" in err and "bench: building" not in out, err


def test_default_out_of_a_checkpoint_in_a_read_only_place(tmp_path, checkpoint, real_data_dir, capsys, monkeypatch):
    """Without --out, eval writes beside the checkpoint: that folder is checked too (here: a fake one)."""
    import nuat.cli.checks as checks

    def refuse(folder, flag, value):
        raise checks.UsageError(f"{flag} {value}: cannot write in {folder} (Read-only file system)")

    monkeypatch.setattr(checks, "_check_writable_folder", refuse)
    code, _, err = run_main(capsys, _commands(str(real_data_dir), checkpoint)["eval"])
    assert code == 2 and "the default --out" in err and "eval-ck" in err, err
    _one_line(err)


def test_bad_or_missing_device_is_one_line(tmp_path, checkpoint, real_data_dir, capsys):
    missing = "cuda:99" if torch.cuda.is_available() else "cuda"
    for name, argv in _commands(str(real_data_dir), checkpoint).items():
        for device in ("bogus", missing):
            out_dir = tmp_path / f"{name}-{device.replace(':', '')}"
            code, out, err = run_main(capsys, argv + ["--device", device, "--out", str(out_dir / "r")])
            assert code == 2, (name, device, err)
            _one_line(err)
            assert f"--device {device!r}" in err and "auto, cpu" in err, err
            assert not out_dir.exists() and "bench: building" not in out


def test_an_os_error_late_in_a_command_is_one_line(monkeypatch, capsys):
    import nuat.cli.bench_cmd as bench_cmd

    def late_failure(args):
        open("/nonexistent-folder-for-nuat/x.json", "w")

    monkeypatch.setattr(bench_cmd, "run", late_failure)
    code, _, err = run_main(capsys, ["bench"])
    assert code == 2
    _one_line(err)
    assert err.startswith("nuat bench: error: No such file or directory: /nonexistent-folder-for-nuat/x.json"), err


def test_a_full_disk_is_not_reported_as_bad_input(monkeypatch, capsys):
    import errno

    import nuat.cli.bench_cmd as bench_cmd

    def disk_full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x.json")

    monkeypatch.setattr(bench_cmd, "run", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run_main(capsys, ["bench"])


# --- mutation-testing additions: an empty --out, late path errors of every kind

def test_an_empty_out_is_refused_not_replaced_by_the_default(tmp_path, checkpoint, real_data_dir, capsys,
                                                              monkeypatch):
    # --out "$UNSET_VARIABLE": one line, not a run written into the default folder (or the current one)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for name, argv in _commands(str(real_data_dir), checkpoint).items():
        code, _, err = run_main(capsys, argv + ["--out", ""])
        assert code == 2 and f"nuat {name}: error: --out is empty" in err, (name, err)
        _one_line(err)
    assert _listing(work) == [] and _listing(checkpoint.parent) == ["ck.safetensors", "cwd"]


@pytest.mark.parametrize("late", ["below a file", "a folder opened as a file", "missing folder"])
def test_late_path_errors_of_each_kind_are_one_line(tmp_path, monkeypatch, capsys, late):
    import nuat.cli.bench_cmd as bench_cmd

    (tmp_path / "file.txt").write_text("x")
    target = {"below a file": tmp_path / "file.txt" / "x.json", "a folder opened as a file": tmp_path,
              "missing folder": tmp_path / "missing" / "x.json"}[late]
    monkeypatch.setattr(bench_cmd, "run", lambda args: open(target, "w"))
    code, _, err = run_main(capsys, ["bench"])
    assert code == 2 and str(target) in err, err
    _one_line(err)


def test_bench_without_out_writes_to_a_scratch_folder(real_data_dir, tmp_path, monkeypatch, capsys):
    """The default was benchmarks/<cpu|gpu>/..., where a quick try from the repository root
    silently replaced the committed report of the same shape."""
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--methods", "erm", "--steps", "1", "--trials", "1", "--warmup", "0", "--batch-size", "16",
                 "--data-dir", str(real_data_dir), "--quiet"]) == 0
    assert (tmp_path / "runs" / "bench" / "cpu" / "mnist-small-cnn-b16.json").is_file()
    assert not (tmp_path / "benchmarks").exists()


def test_training_draws_no_progress_bar_into_a_redirected_stream(real_data_dir, tmp_path, capsys):
    """The bars were drawn whatever stderr was: a log file got a frame per update (34 KB for 8
    small epochs). tqdm now decides, and draws on a terminal only."""
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--model", "small-cnn", "--method", "erm", "--epochs", "1",
                 "--train-limit", "200", "--batch-size", "50", "--val-per-class", "2", "--final-eval", "0",
                 "--data-dir", str(real_data_dir), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "batch/s" not in err, err[:300]


def test_missing_test_data_names_the_runs_data_dir(real_data_dir, tmp_path, capsys, monkeypatch):
    """A run trained with --data-dir and evaluated without it failed with 'not found ... download
    failed' and no word of where the run had found its data."""
    monkeypatch.setenv("NUAT_OFFLINE", "1")
    monkeypatch.delenv("NUAT_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--model", "small-cnn", "--method", "erm", "--epochs", "1",
                 "--train-limit", "100", "--batch-size", "50", "--val-per-class", "2", "--final-eval", "0",
                 "--no-progress", "--data-dir", str(real_data_dir), "--out", str(out)]) == 0
    capsys.readouterr()
    code, _, err = run_main(capsys, ["eval", str(out), "--attacks", "clean", "--n", "8", "--no-progress"])
    assert code == 2 and err.count("\n") == 1, err
    assert f"this run was trained with --data-dir {real_data_dir}: pass it again" in err, err
