"""benchmarks/gpu/pass_ratios.py: r = fi / ff and the two ratio targets it implies, checked against
the formulas and the committed reports; a missing report is one line and exit code 2."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu" / "pass_ratios.py"


@pytest.fixture(scope="module")
def pass_ratios():
    spec = importlib.util.spec_from_file_location("pass_ratios", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_window_of_both_targets(pass_ratios):
    # NuAT / ERM = 2 + r <= 2.8 and PGD-10 / NuAT = (10 r + 1) / (r + 2) >= 2.8: 0.639 <= r <= 0.8
    assert pass_ratios.implied(0.8) == pytest.approx((2.8, 9 / 2.8))
    assert pass_ratios.implied(4.6 / 7.2)[1] == pytest.approx(2.8)
    assert pass_ratios.implied(0.5) == pytest.approx((2.5, 2.4))


def test_rows_of_a_committed_report(pass_ratios, capsys):
    path = REPO / "benchmarks" / "gpu" / "h200-resnet18-b512-host-svd.json"
    assert pass_ratios.main([str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    passes = json.loads(path.read_text())["passes"]
    assert len(lines) == 2 + len(passes)
    fp32 = next(line for line in lines if "| fp32 |" in line).split("|")
    expected = passes["fp32"]["forward_input_backward"]["median"] / passes["fp32"]["forward_full_backward"]["median"]
    assert float(fp32[3]) == pytest.approx(expected, abs=0.005)
    assert "(eager profile)" in next(line for line in lines if "| fast |" in line)


def test_missing_report_is_exit_2(pass_ratios, tmp_path, capsys):
    assert pass_ratios.main([str(tmp_path / "none.json")]) == 2
    assert "no such report" in capsys.readouterr().err


def test_compiled_profiles_are_marked_only_in_reports_made_before_the_fix(pass_ratios, tmp_path, capsys):
    report = json.loads((REPO / "benchmarks" / "gpu" / "h200-resnet18-b512-host-svd.json").read_text())
    report["config"]["profile_before_host_checks"] = True  # as reports since commit aa59bd5 say
    path = tmp_path / "new.json"
    path.write_text(json.dumps(report))
    assert pass_ratios.main([str(path)]) == 0
    assert "(eager profile)" not in capsys.readouterr().out


def test_a_file_that_is_no_bench_report_is_one_line_and_exit_2(pass_ratios, tmp_path, capsys):
    for text in ("{not json", json.dumps({"schema": 1})):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        assert pass_ratios.main([str(bad)]) == 2
        out = capsys.readouterr()
        assert out.out == "" and len(out.err.strip().splitlines()) == 1 and "not a nuat bench JSON" in out.err
