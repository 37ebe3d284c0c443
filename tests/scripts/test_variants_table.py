"""scripts/foundation/variants_table.py states what its rows were measured on."""

import json
from pathlib import Path

from nuat_testing import load_script


def fake_run(folder: Path, method: str, test_n: int) -> Path:
    """The three files nuat train writes that the table reads, with a test evaluation on test_n images."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "method": method, "lr": 0.05, "lr_up": 0.4, "lr_down": 0.5, "eps": 0.1, "model": "small-cnn", "epochs": 8,
        "batch_size": 128, "seed": 0, "commit": "abc", "machine": "cpu"}))
    (folder / "summary.json").write_text(json.dumps({
        "train_seconds": 10.0,
        "test": {"n": test_n, "best": {"epoch": 7, "clean_acc": 0.8, "pgd100_acc": 0.7}}}))
    (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1}) + "\n")
    return folder


def test_the_number_of_test_images_comes_from_the_runs(tmp_path, capsys):
    table = load_script("scripts/foundation/variants_table.py")
    table.main([str(fake_run(tmp_path / "a", "nuat", 200))])
    out = capsys.readouterr().out
    assert "first 200 test images" in out and "1,000" not in out
    table.main([str(fake_run(tmp_path / "b", "nuat", 1000)), str(fake_run(tmp_path / "c", "nuat-wa", 500))])
    out = capsys.readouterr().out
    assert "first 500 or 1,000 test images (per row: nuat 1,000, nuat-wa 500)" in out


def test_the_load_average_at_each_run_start_is_shown_where_recorded(tmp_path, capsys):
    table = load_script("scripts/foundation/variants_table.py")
    timed = fake_run(tmp_path / "a", "nuat", 1000)
    (timed / "process_time.json").write_text('{"process_seconds": 161.2, "load_average_before": 0.42}')
    table.main([str(timed), str(fake_run(tmp_path / "b", "nuat-wa", 1000))])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| nuat")]
    assert rows[0].endswith("| 10 | 161 | 0.42 | - |") and rows[1].endswith("| 10 | - | - | - |"), rows
