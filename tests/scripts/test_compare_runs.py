"""scripts/baselines/compare_runs.py tells a reproduced run from one that differs."""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from nuat_testing import load_script


def fake_run(folder: Path, commit: str, weight: float, seconds: float, robust: int, collapse: bool = False) -> None:
    (folder / "eval" / "best").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"commit": commit}))
    (folder / "summary.json").write_text("{}")
    save_file({"w": torch.full((3,), weight)}, str(folder / "best.safetensors"))
    rows = [{"epoch": e, "loss": 0.5 / e, "regulariser": float("nan"), "seconds": seconds, "collapse": collapse}
            for e in (1, 2)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "eval" / "best" / "eval.json").write_text(json.dumps(
        {"attacks": [{"name": "pgd-100", "robust": robust, "accuracy": robust / 10}]}))


def test_times_and_nan_fields_aside_a_rerun_is_the_same_and_a_change_is_named(tmp_path, capsys):
    compare_runs = load_script("scripts/baselines/compare_runs.py")
    fake_run(tmp_path / "old" / "nuat", "abc+dirty", 1.0, seconds=10.0, robust=7)
    fake_run(tmp_path / "new" / "nuat", "def", 1.0, seconds=4.0, robust=7)
    assert compare_runs.main([str(tmp_path / "old"), str(tmp_path / "new")]) == 0
    row = capsys.readouterr().out.splitlines()[-1]
    assert row == "| nuat | abc+dirty | def | same (1) | same | same (1) |"

    fake_run(tmp_path / "new2" / "nuat", "def", 1.5, seconds=4.0, robust=6, collapse=True)
    assert compare_runs.main([str(tmp_path / "old"), str(tmp_path / "new2"), "nuat"]) == 1
    row = capsys.readouterr().out.splitlines()[-1]
    assert row == "| nuat | abc+dirty | def | **differ** (1) | **differ**: collapse | **differ** (1) |"
