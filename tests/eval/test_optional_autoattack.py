"""Without the optional package ``pyautoattack`` (the ``eval`` extra), ``nuat eval`` with an
AutoAttack in its list and ``nuat sanity`` (Square) stop before any work: one line naming the
attack and the install command, exit code 2, nothing written. The default ``nuat eval`` list
holds ``aa``, so a plain install would otherwise run its other attacks and end in a traceback."""

import sys

import pytest

from nuat.cli import main


@pytest.fixture
def no_pyautoattack(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyautoattack", None)  # ``import pyautoattack`` raises ImportError


@pytest.mark.parametrize("attacks, named", [("clean,pgd-5,aa", "attack 'aa'"), ("clean,aa-v1@8", "attack 'aa-v1'"),
                                            (None, "attack 'aa'")])
def test_eval_without_pyautoattack_is_one_line_exit_2(no_pyautoattack, undefended_checkpoint, tmp_path,
                                                      real_data_dir, capsys, attacks, named):
    out = tmp_path / "eval"
    args = ["eval", str(undefended_checkpoint), "--data-dir", str(real_data_dir), "--n", "8", "--out", str(out),
            "--no-progress"] + ([] if attacks is None else ["--attacks", attacks])
    code = main(args)
    stdout, err = capsys.readouterr()
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and named in err and "pip install 'nuat[eval]'" in err, err
    assert not out.exists()


def test_eval_without_aa_needs_no_pyautoattack(no_pyautoattack, undefended_checkpoint, tmp_path, real_data_dir,
                                              capsys):
    out = tmp_path / "eval"
    code = main(["eval", str(undefended_checkpoint), "--data-dir", str(real_data_dir), "--n", "8", "--attacks",
                 "clean,fgsm", "--out", str(out), "--no-progress"])
    capsys.readouterr()
    assert code == 0 and (out / "eval.json").is_file()


def test_sanity_without_pyautoattack_is_one_line_exit_2(no_pyautoattack, undefended_checkpoint, tmp_path,
                                                        real_data_dir, capsys):
    out = tmp_path / "sanity"
    code = main(["sanity", str(undefended_checkpoint), "--data-dir", str(real_data_dir), "--n", "8", "--out", str(out),
                 "--no-progress"])
    stdout, err = capsys.readouterr()
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and "Square" in err and "pip install 'nuat[eval]'" in err, err
    assert not out.exists()
