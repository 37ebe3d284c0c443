"""Bad values found by a sweep of every option (non-finite numbers, seeds out of range, empty
entries, options that would be ignored): each is one stderr line naming it, exit code 2, nothing written."""

import pytest

from nuat.cli import main
from nuat_testing import run_main

#: a tiny run, should a bad value be let through
TINY = ["--dataset", "mnist", "--model", "small-cnn", "--epochs", "1", "--train-limit", "50", "--val-per-class", "2",
        "--final-eval", "0", "--no-progress"]


def refused(argv, capsys, out=None):
    """Run ``argv``; assert exit code 2, one stderr line, no traceback and ``out`` not created; the line."""
    code, _, err = run_main(capsys, argv)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (argv, code, err)
    if out is not None:
        assert not out.exists(), sorted(p.name for p in out.rglob("*"))
    return err


@pytest.mark.parametrize("method, flag, value", [
    ("nuat", "--lr", "inf"), ("nuat", "--lam-max", "inf"), ("nuat", "--lam-max", "nan"),
    ("nuat", "--lam-boost", "0.5,inf"), ("trades", "--beta", "inf"), ("trades", "--beta", "nan"),
    ("trades-awp", "--awp-gamma", "nan"), ("trades-awp", "--awp-gamma", "inf"),
    ("nuat-h", "--switch-threshold", "inf"),
])
def test_train_refuses_non_finite_numbers(method, flag, value, capsys, real_data_dir, tmp_path):
    """nan/inf passed the range checks: the run started, wrote its folder, and died in the SVD with a
    traceback (lr, lam-max), ended as 'diverged' (beta, awp-gamma inf), or trained silently with a
    meaningless setting (awp-gamma nan, lam-boost inf, a hybrid that always switches)."""
    out = tmp_path / "run"
    err = refused(["train", *TINY, "--method", method, f"{flag}={value}", "--data-dir", str(real_data_dir),
                   "--out", str(out)], capsys, out)
    assert "finite" in err and value.split(",")[-1] in err, err


def test_eval_refuses_an_infinite_nuclear_lambda(capsys, tmp_path):
    out = tmp_path / "ev"
    err = refused(["eval", str(tmp_path), "--attacks", "nuclear", "--nuclear-lam", "inf", "--out", str(out)],
                  capsys, out)
    assert "--nuclear-lam inf" in err and "finite" in err, err


@pytest.mark.parametrize("command", ["train", "eval", "sanity", "bench"])
@pytest.mark.parametrize("value", ["99999999999999999999", str(2**63), str(-2**63 - 1)])
def test_seeds_outside_64_bits_are_refused(command, value, capsys, real_data_dir, tmp_path):
    """torch's generators take a signed 64-bit seed: a larger one ran train, sanity and bench up to
    the first generator and ended with an overflow traceback (sanity and bench after loading the data)."""
    out = tmp_path / "out"
    target = [] if command in ("train", "bench") else [str(tmp_path)]
    extra = TINY if command == "train" else []
    err = refused([command, *target, *extra, "--seed", value, "--data-dir", str(real_data_dir),
                   "--out", str(out)], capsys, out)
    assert f"seed {value} is out of range" in err and str(2**63 - 1) in err, err


def test_the_extreme_seeds_run(capsys, real_data_dir, tmp_path):
    """The ends of the range work (train adds 1 to its seed for the attack generator)."""
    for value in (2**63 - 1, -2**63):
        out = tmp_path / f"run{value}"
        assert main(["train", *TINY, "--train-limit", "10", "--seed", str(value), "--data-dir",
                     str(real_data_dir), "--out", str(out)]) == 0, capsys.readouterr().err


def test_an_empty_resume_is_refused_not_a_fresh_run(capsys, real_data_dir, tmp_path):
    """--resume "$UNSET" started a new run as if --resume were not given."""
    out = tmp_path / "run"
    err = refused(["train", *TINY, "--resume", "", "--data-dir", str(real_data_dir), "--out", str(out)], capsys, out)
    assert "--resume is empty" in err, err


def test_an_at_without_a_count_is_refused(capsys, tmp_path):
    """'clean@' ran on all images, as if no @ were written."""
    out = tmp_path / "ev"
    err = refused(["eval", str(tmp_path), "--attacks", "clean,pgd-20@", "--out", str(out)], capsys, out)
    assert "'pgd-20@'" in err and "positive integer" in err, err


def test_mean_and_std_without_model_are_refused_not_ignored(capsys, real_data_dir, tmp_path):
    """On a nuat run directory --mean/--std were silently ignored (any values, even std 0)."""
    run = tmp_path / "run"
    assert main(["train", *TINY, "--train-limit", "10", "--data-dir", str(real_data_dir), "--out", str(run)]) == 0
    for command in ("eval", "sanity"):
        out = tmp_path / command
        err = refused([command, str(run), "--mean", "0.5", "--std", "0", "--data-dir", str(real_data_dir),
                       "--out", str(out)], capsys, out)
        assert "--mean/--std apply to a plain state dict" in err, err


def test_targets_without_a_targeted_attack_is_refused(capsys, tmp_path):
    """--targets with no targeted-pgd in --attacks was accepted and silently ignored."""
    out = tmp_path / "ev"
    err = refused(["eval", str(tmp_path), "--attacks", "clean,pgd-20", "--targets", "3", "--out", str(out)],
                  capsys, out)
    assert "--targets applies to targeted-pgd" in err, err


@pytest.mark.parametrize("argv", [
    ["eval", "{tmp}", "--attacks", "clean,,fgsm"], ["eval", "{tmp}", "--attacks", "clean,fgsm,"],
    ["bench", "--methods", "erm,,nuat"], ["bench", "--methods", "erm,"],
])
def test_an_empty_list_entry_is_refused(argv, capsys, tmp_path):
    """Empty entries were dropped without a word; a lost name (a variable left unset) went unnoticed."""
    out = tmp_path / "out"
    err = refused([a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--out", str(out)], capsys, out)
    assert "has an empty entry" in err, err


def test_no_command_prints_the_help_to_stderr(capsys):
    """A usage error like argparse's own: exit code 2, the help on stderr, nothing on stdout."""
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "usage: nuat" in captured.err


@pytest.mark.parametrize("command", ["eval", "sanity"])
def test_mean_that_is_not_a_number_list_is_refused(command, capsys, tmp_path):
    """--mean/--std for a plain state dict: a non-number is named with what to give."""
    out = tmp_path / command
    err = refused([command, str(tmp_path / "w.safetensors"), "--model", "small-cnn", "--mean", "0.5,a",
                   "--out", str(out)], capsys, out)
    assert "--mean '0.5,a' is invalid; give comma-separated numbers" in err, err


def test_an_attack_parameter_no_listed_attack_reads_is_refused(capsys, tmp_path):
    """--pgd-step and the other attack parameters were silently ignored without their attack
    (only --targets was refused); each names the attacks that read it."""
    for flag, value, attacks, readers in [("--pgd-step", "0.01", "clean,fgsm", "pgd and targeted-pgd"),
                                          ("--pgd-restarts", "3", "clean,targeted-pgd-5", "pgd"),
                                          ("--pgd-loss", "margin", "clean", "pgd"),
                                          ("--nuclear-lam", "3", "clean,pgd-10", "nuclear"),
                                          ("--gama-reference", "clean", "clean,pgd-10", "gama-pgd")]:
        out = tmp_path / "ev"
        err = refused(["eval", str(tmp_path), "--attacks", attacks, flag, value, "--out", str(out)], capsys, out)
        assert f"{flag} applies to {readers} attacks; --attacks {attacks!r} has none" in err, err


@pytest.mark.parametrize("argv, expected", [
    (["eval", ""], "the checkpoint or run directory is empty"),  # was: the current folder
    (["sanity", ""], "the checkpoint or run directory is empty"),
    (["eval", "/dev/null"], "/dev/null is not a regular file"),  # was: "does not exist"
    (["train", *TINY, "--data-dir", ""], "argument --data-dir: the value is empty"),  # was: the current folder
    (["bench", "--methods", "erm", "--data-dir", ""], "argument --data-dir: the value is empty"),
    (["bench", "--render", ""], "--render is empty"),  # was: a whole benchmark, as if no --render
    (["bench", "--methods", "erm", "--variants", "fp32,,bf16"], "--variants 'fp32,,bf16' has an empty entry"),
    (["bench", "--methods", "erm", "--threads", "100000"], "--threads 100000 is invalid; give 1 to"),  # segfault
    (["bench", "--methods", "erm", "--threads", "99999999999999999999"], "is invalid; give 1 to"),  # overflow
    (["train", *TINY, "--method", "pgd-at", "--attack-steps", "99999999999999999999"],
     "PGD-AT takes 1 to 1000 attack steps, got 99999999999999999999"),  # one step for ever
    (["train", *TINY, "--model", "wrn-D-W"], "wrn-D-W (depth D, width W, e.g. wrn-34-10)"),
])
def test_empty_and_unbounded_values_are_refused(argv, expected, capsys, tmp_path):
    out = tmp_path / "out"
    err = refused([*argv, "--out", str(out)], capsys, out)
    assert expected in err, err


@pytest.mark.parametrize("content", ["[1, 2]", "null", '"text"', '{"report": 5}'])
def test_render_of_json_that_is_no_bench_result_is_refused(content, capsys, tmp_path):
    """A JSON value other than an object crashed --render with an AttributeError traceback."""
    saved = tmp_path / "b.json"
    saved.write_text(content)
    err = refused(["bench", "--render", str(saved)], capsys)
    assert f"--render {saved}: not a readable nuat bench JSON" in err, err
    assert not (tmp_path / "b.md").exists()


def test_a_pickle_given_as_a_plain_state_dict_is_one_line(tmp_path):
    """torch.load's pickle-protocol warning added two lines before the refusal (in a subprocess:
    pytest would catch the warning itself)."""
    import pickle
    import subprocess
    import sys

    path = tmp_path / "w.pkl"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    for command in ("eval", "sanity"):
        out = tmp_path / command
        done = subprocess.run([sys.executable, "-m", "nuat", command, str(path), "--model", "small-cnn", "--dataset",
                               "mnist", "--out", str(out)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert f"refusing {path}: it is neither safetensors nor a plain state dict" in done.stderr, done.stderr
        assert not out.exists()


@pytest.mark.parametrize("given", ["x", "x.md"])
def test_bench_refuses_an_out_whose_report_file_is_a_folder(given, capsys, tmp_path):
    """The whole benchmark ran and then failed writing <out>.json."""
    (tmp_path / "x.json").mkdir()
    err = refused(["bench", "--methods", "erm", "--out", str(tmp_path / given)], capsys)
    assert f"{tmp_path / 'x.json'} is a folder, so the .json file cannot be written" in err, err
