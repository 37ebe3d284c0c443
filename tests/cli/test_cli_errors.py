"""Bad input: one line on stderr, exit code 2, nothing written (a property-based sweep)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nuat.cli import main

VALID = {"--dataset": "mnist", "--eps": "0.3", "--epochs": "1", "--batch-size": "64", "--lr": "0.05",
         "--method": "nuat", "--model": "small-cnn"}

BAD_VALUES = {
    "--eps": st.sampled_from(["0", "-0.1", "1.5", "abc", "8/0", "nan", "inf", "300/255", ""]),
    "--epochs": st.one_of(st.integers(max_value=0).map(str), st.sampled_from(["1.5", "x"])),
    "--batch-size": st.one_of(st.integers(max_value=0).map(str), st.sampled_from(["two"])),
    "--lr": st.sampled_from(["0", "-1", "abc", "nan"]),
    "--lam-max": st.sampled_from(["-1", "-0.001"]),
    "--lr-up": st.sampled_from(["0", "1.5", "-0.2"]),
    "--ramp-fraction": st.sampled_from(["1.01", "-1"]),
    "--dataset": st.sampled_from(["mnis", "cifar", "MNIST", "imagenet1k", ""]),
    "--method": st.sampled_from(["nuat3", "pgd", "NuAT", "trade", ""]),
    "--model": st.sampled_from(["resnet-18", "wrn-33-10", "wrn-34-0", "cnn", ""]),
    "--tau": st.sampled_from(["1.0", "1.5", "-0.1"]),
    "--save-every": st.sampled_from(["-1", "x"]),
    "--on-collapse": st.sampled_from(["ignore", "roll-back"]),
    "--val-per-class": st.sampled_from(["-5", "100000"]),
    "--switch-threshold": st.sampled_from(["0.5"]),  # only hybrid methods take it
    "--nuclear-group-size": st.sampled_from(["0", "-64", "x"]),
    "--nuclear-backend": st.sampled_from(["qr", "SVD", ""]),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_invalid_configs_exit_2_with_one_line_and_write_nothing(data, real_data_dir, tmp_path_factory, capsys):
    flag = data.draw(st.sampled_from(sorted(BAD_VALUES)))
    value = data.draw(BAD_VALUES[flag])
    args = dict(VALID)
    if flag == "--tau":
        args["--method"] = "nuat-wa"
    args[flag] = value
    out = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", "--data-dir", str(real_data_dir), "--out", str(out), "--no-progress", "--final-eval", "0"]
    for k, v in args.items():
        argv += [f"{k}={v}"]
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse type errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists()


def test_messages_name_the_value_and_the_choices(capsys, real_data_dir, tmp_path):
    assert main(["train", "--dataset", "fashion_mnist", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "'fashion_mnist'" in err and "fashion-mnist" in err and "did you mean" in err
    assert main(["train", "--method", "nuat-w", "--data-dir", str(real_data_dir), "--out", str(tmp_path / "r")]) == 2
    assert "did you mean 'nuat-wa'" in capsys.readouterr().err
    # a NuAT-only switch on another method: one line, not a TypeError from the method's builder
    assert main(["train", "--method", "pgd-at", "--nuclear-group-size", "64", "--data-dir", str(real_data_dir),
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--nuclear-group-size applies to the NuAT family" in err and err.count("\n") == 1


def test_missing_data_names_folders_and_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NUAT_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NUAT_DATA", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["train", "--dataset", "mnist", "--data-dir", str(empty), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert str(empty) in err and "train-images-idx3-ubyte" in err
    assert not (tmp_path / "run").exists()


def test_out_folder_with_files_is_refused(tmp_path, real_data_dir, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["train", "--data-dir", str(real_data_dir), "--out", str(out)]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_pixel_options_name_themselves_not_eps(capsys, real_data_dir, tmp_path):
    """--alpha and --step-size are parsed like eps; a bad one (and a bad --eps) is reported as itself."""
    for method, flag in (("nuat", "--alpha"), ("pgd-at", "--step-size"), ("nuat", "--eps")):
        out = tmp_path / f"{method}{flag}"
        code = main(["train", "--method", method, f"{flag}=-1", "--data-dir", str(real_data_dir),
                     "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, err
        assert f"{flag} '-1' is out of range" in err and not err.startswith("nuat train: error: eps"), err
        assert not out.exists()


def test_switch_threshold_must_be_positive(capsys, real_data_dir, tmp_path):
    """0 or a negative threshold never switches: the hybrid would run as plain NuAT without a word."""
    for value in ("0", "-1"):
        out = tmp_path / f"run{value}"
        code = main(["train", "--method", "nuat-h", f"--switch-threshold={value}", "--data-dir", str(real_data_dir),
                     "--out", str(out), "--epochs", "1", "--train-limit", "100", "--val-per-class", "2",
                     "--final-eval", "0", "--no-progress"])  # small, should it run
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and f"--switch-threshold {value}" in err, err
        assert not out.exists()
