"""--resume continues a run as saved in its config.json: an option that would change it is refused
(one line, exit 2, the run untouched), not silently ignored; the same options, --device and
--no-progress are accepted."""

from __future__ import annotations

import pytest

from nuat.cli import main

RUN = ["--dataset", "mnist", "--model", "small-cnn", "--method", "nuat-wa", "--epochs", "1", "--batch-size", "100",
       "--train-limit", "200", "--val-per-class", "2", "--final-eval", "0", "--no-progress"]


@pytest.fixture
def unfinished_run(tmp_path, real_data_dir):
    out = tmp_path / "run"
    assert main(["train", *RUN, "--data-dir", str(real_data_dir), "--out", str(out)]) == 0
    (out / "summary.json").unlink()  # as if stopped after its last state
    return out


def snapshot(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize("changed", [["--epochs", "5"], ["--lr", "0.5"], ["--eps", "0.2"], ["--alpha", "0.01"],
                                     ["--tau", "0.5"], ["--method", "pgd-at"]])
def test_resume_refuses_options_that_change_the_run(unfinished_run, changed, capsys):
    before = snapshot(unfinished_run)
    capsys.readouterr()
    assert main(["train", "--resume", str(unfinished_run), *changed]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and changed[0] in err and "config.json" in err, err
    assert snapshot(unfinished_run) == before
    # --resume auto with the fresh run's options: the same refusal
    assert main(["train", "--resume", "auto", "--out", str(unfinished_run), *changed]) == 2
    assert changed[0] in capsys.readouterr().err


def test_resume_accepts_the_same_options(unfinished_run, real_data_dir):
    assert main(["train", *RUN, "--data-dir", str(real_data_dir), "--out", str(unfinished_run), "--eps", "3/10",
                 "--resume", str(unfinished_run), "--device", "cpu"]) == 0
    assert (unfinished_run / "summary.json").exists()


def test_resume_accepts_data_that_moved_and_then_says_the_run_is_finished(unfinished_run, real_data_dir, tmp_path,
                                                                         capsys):
    moved = tmp_path / "moved-data"
    moved.symlink_to(real_data_dir, target_is_directory=True)
    assert main(["train", "--resume", str(unfinished_run), "--data-dir", str(moved)]) == 0
    assert (unfinished_run / "summary.json").exists()
    capsys.readouterr()
    assert main(["train", "--resume", str(unfinished_run)]) == 2
    err = capsys.readouterr().err
    assert "that run is finished" in err and "nuat eval" in err and len(err.splitlines()) == 1, err


def test_a_broken_state_is_reported_as_one_plain_warning_line(unfinished_run, capsys):
    states = sorted((unfinished_run / "state").glob("state-*.safetensors"))
    newest = states[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    capsys.readouterr()
    main(["train", "--resume", str(unfinished_run)])
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "unreadable" in x)
    assert line.startswith(f"nuat train: warning: training state {newest}"), err
    assert "Warning" not in err and "warnings.warn" not in err and "load_latest_state" not in err, err


# The comparison itself, without training: a saved run is its config.json (as a fresh run writes it)
# and a state/ folder; resumed_config either returns the saved configuration or refuses (UsageError).

def _train_args(*options):
    from nuat.cli import build_parser

    return build_parser().parse_args(["train", *options])


def saved_run(tmp_path, *options, name="run"):
    import json

    from nuat.cli.train_cmd import resolve_config

    folder = tmp_path / name
    folder.mkdir()
    cfg = resolve_config(_train_args(*RUN, *options, "--out", str(folder)), fresh=False)
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    (folder / "state").mkdir()
    return folder


def resume(folder, *options):
    from pathlib import Path

    from nuat.cli.resume import resumed_config

    return resumed_config(Path(folder), _train_args("--resume", str(folder), *options))


@pytest.mark.parametrize("changed", [["--seed", "0"], ["--dataset", "fashion-mnist"], ["--method", "nuat"],
                                     ["--val-per-class", "100"], ["--final-eval", "1000"], ["--save-every", "0"],
                                     ["--on-collapse", "warn"], ["--nuclear-backend", "auto"]])
def test_resume_refuses_a_change_to_the_options_default_value(tmp_path, changed):
    """An option given with its default value is given: on a run saved with another value it is a change."""
    from nuat.errors import UsageError

    folder = saved_run(tmp_path, "--seed", "1", "--save-every", "5", "--on-collapse", "rollback",
                       "--nuclear-backend", "svd")
    with pytest.raises(UsageError, match=f"changes {changed[0]} "):
        resume(folder, *changed)


@pytest.mark.parametrize("method, repeated", [("nuat-h", ["--switch-threshold", "0.6"]),
                                              ("nuat-h", ["--attack-steps", "1"]),
                                              ("pgd-at", ["--attack-steps", "10"]),
                                              ("trades", ["--beta", "6"]),
                                              ("fgsm-at", ["--clean-weight", "0.5"])])
def test_resume_accepts_a_method_hyperparameter_at_its_default(tmp_path, method, repeated):
    """A run saved without --switch-threshold has the method's 0.6: giving 0.6 repeats it."""
    folder = saved_run(tmp_path, "--method", method)
    assert resume(folder, *repeated).method == method
    assert resume(folder, "--method", method, *repeated).method == method


def test_resume_names_the_saved_default_of_a_changed_hyperparameter(tmp_path):
    from nuat.errors import UsageError

    folder = saved_run(tmp_path, "--method", "nuat-h")
    with pytest.raises(UsageError, match=r"changes --switch-threshold \(saved: 0\.6\)"):
        resume(folder, "--switch-threshold", "0.5")


def test_resume_resolves_lr_up_with_the_saved_lr_drops(tmp_path):
    """gat saved with --lr-drops none --lr-up 0.3: --lr-up 0.3 alone repeats it (the run's schedule is the
    cyclic one), and --lr-up 0.2 is a change, not 'add --lr-drops none'."""
    from nuat.errors import UsageError

    folder = saved_run(tmp_path, "--method", "gat", "--lr-drops", "none", "--lr-up", "0.3")
    assert resume(folder, "--lr-up", "0.3").lr_up == 0.3
    with pytest.raises(UsageError, match=r"changes --lr-up \(saved: 0\.3\)"):
        resume(folder, "--lr-up", "0.2")
    stepped = saved_run(tmp_path, "--method", "gat", "--lr-drops", "0.5", name="stepped")
    assert resume(stepped, "--lr-drops", "0.5").lr_drops == [0.5]
    with pytest.raises(UsageError, match="--lr-up/--lr-down shape the cyclic-step LR"):
        resume(stepped, "--lr-up", "0.3")


def test_resume_refuses_another_out_and_accepts_the_same_folder_spelled_otherwise(tmp_path):
    """--resume RUN --out OTHER would write into RUN, not OTHER: refused; RUN/ or RUN/../RUN is RUN."""
    from nuat.errors import UsageError

    folder = saved_run(tmp_path)
    with pytest.raises(UsageError, match=r"changes --out \(saved: "):
        resume(folder, "--out", str(tmp_path / "elsewhere"))
    assert resume(folder, "--out", f"{folder}/").out == str(folder)
    assert resume(folder, "--out", str(folder / ".." / folder.name)).out == str(folder)


def test_resume_with_overwrite_is_refused_and_deletes_nothing(unfinished_run, capsys):
    before = snapshot(unfinished_run)
    capsys.readouterr()
    assert main(["train", "--resume", str(unfinished_run), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "--overwrite would delete it" in err and len(err.splitlines()) == 1, err
    assert snapshot(unfinished_run) == before
