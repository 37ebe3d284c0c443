"""benchmarks/cpu/batch_gather.py times the two ways of taking a batch on real MNIST (and checks
they give the same batch); a data folder without mnist/ is one line and exit code 2."""

from __future__ import annotations

import re

from nuat_testing import load_script


def test_times_both_gathers_on_real_mnist(real_data_dir, capsys):
    script = load_script("benchmarks/cpu/batch_gather.py")
    assert script.main(["--data-dir", str(real_data_dir), "--repeats", "5"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"images\[index\] [0-9.]+ us, index_select [0-9.]+ us", out) and "commit" in out


def test_missing_data_is_exit_2(tmp_path, capsys):
    script = load_script("benchmarks/cpu/batch_gather.py")
    assert script.main(["--data-dir", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
