"""Bad values found by a sweep of every option (non-finite numbers, seeds out of range, empty
entries, options that would be ignored): each is one stderr line naming it, exit code 2, nothing written."""

import pytest

from nuat.cli import main

#: a tiny run, should a bad value be let through
TINY = ["--dataset", "mnist", "--model", "small-cnn", "--epochs", "1", "--train-limit", "50", "--val-per-class", "2",
        "--final-eval", "0", "--no-progress"]


def refused(argv, capsys, out=None):
    """Run ``argv``; assert exit code 2, one stderr line, no traceback and ``out`` not created; the line."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse-level errors
        code = exc.code
    err = capsys.readouterr().err
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
