"""scripts/baselines/seed_check.sh: per-seed rows, the mean rows and the summary of means."""

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def fake_finished_run(run: Path, clean: float, pgd: float, aa: float, square_only: int) -> None:
    """A run that run_all.sh and eval_all.sh skip (summary.json and eval.json present)."""
    (run / "eval" / "best").mkdir(parents=True)
    (run / "summary.json").write_text("{}")
    (run / "config.json").write_text(json.dumps({"commit": "c0ffee"}))
    components = [{"name": "fab-t", "robust": 300 + square_only}, {"name": "square", "robust": 300}]
    attacks = [{"name": "clean", "accuracy": clean, "n": 1000}, {"name": "pgd-100", "accuracy": pgd},
               {"name": "aa", "accuracy": aa, "n": 600, "components": components}]
    (run / "eval" / "best" / "eval.json").write_text(json.dumps(
        {"attacks": attacks, "provenance": {"commit": "beef", "machine": "test machine"}}))


def test_rows_means_and_ranges_come_from_the_runs_of_every_seed(tmp_path):
    base, runs = tmp_path / "base", tmp_path / "seeds"
    fake_finished_run(base / "nuat", 0.80, 0.70, 0.60, 1)
    fake_finished_run(runs / "s1" / "nuat", 0.82, 0.74, 0.66, 2)
    fake_finished_run(runs / "s2" / "nuat", 0.84, 0.72, 0.69, 0)
    # NUAT=true: the training and evaluation steps find every run finished and skip it
    env = dict(os.environ, NUAT="true", BASE=str(base), RUNS=str(runs))
    out = subprocess.run(["bash", str(REPO / "scripts/baselines/seed_check.sh"), "2", "nuat"], env=env,
                         capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert "| nuat | 3 | 82.0 | 72.0 | 65.0 | 60.0-69.0 |" in lines
    assert "| nuat | 0 | 80.0 (1000) | 70.0 | - | 60.0 (600) | 1 |" in lines
    assert "| nuat | 2 | 84.0 (1000) | 72.0 | - | 69.0 (600) | 0 |" in lines
    # GAMA was not run: its mean is "-", not a mean over fewer seeds
    assert "| nuat | mean of 3 | 82.0 | 72.0 | - | 65.0 | |" in lines
    assert "Trained at: c0ffee. Evaluated at: beef." in out


def test_a_seed_that_is_not_a_number_is_refused_with_exit_code_2(tmp_path):
    result = subprocess.run(["bash", str(REPO / "scripts/baselines/seed_check.sh"), "one", "nuat"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "must be a seed" in result.stderr
