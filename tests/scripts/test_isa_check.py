"""scripts/foundation/isa_check.py tells a run that reproduces the committed README run from one that
does not, on finished fake runs (no training)."""

import json
from pathlib import Path

from nuat_testing import load_script

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "foundation" / "fashion-mnist-nuat-metrics.jsonl"


def fake_run(folder: Path, rows: list[dict], machine: str) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "summary.json").write_text(json.dumps({
        "commit": "cafe", "machine": machine, "test": {"best": {"epoch": 7, "clean_acc": 0.832, "pgd100_acc": 0.71}}}))


def test_identical_and_differing_runs(tmp_path, capsys):
    isa_check = load_script("scripts/foundation/isa_check.py")
    reference = [json.loads(line) for line in REFERENCE.read_text().splitlines()]
    retimed = [{**r, "seconds": 1.0, "images_per_s": 2.0} for r in reference]  # time fields do not count
    changed = [dict(r) for r in reference]
    changed[2]["loss"] += 1e-12
    fake_run(tmp_path / "native", changed, "m512")
    fake_run(tmp_path / "avx2", retimed, "m2")
    assert isa_check.main(["--data-dir", str(tmp_path), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    native, avx2 = (line for line in out.splitlines() if line.startswith(("| native", "| avx2")))
    assert "| m512 | differ from epoch 3: loss |" in native
    assert "`ATEN_CPU_CAPABILITY=avx2` `ONEDNN_MAX_CPU_ISA=AVX2` | m2 | identical | 7 | 83.2 | 71.0 |" in avx2
    assert "Trained at commit cafe." in out


def test_no_setting_reproduces(tmp_path, capsys):
    isa_check = load_script("scripts/foundation/isa_check.py")
    reference = [json.loads(line) for line in REFERENCE.read_text().splitlines()]
    fake_run(tmp_path / "native", reference[:-1], "m")
    fake_run(tmp_path / "avx2", reference[:-1], "m")
    assert isa_check.main(["--data-dir", str(tmp_path), "--out", str(tmp_path)]) == 1
    assert "differ from epoch 8: epochs" in capsys.readouterr().out


def test_first_differing_epoch(tmp_path):
    isa_check = load_script("scripts/foundation/isa_check.py")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"epoch": 1, "loss": 1.0, "seconds": 3}\n{"epoch": 2, "loss": 0.5}\n')
    b.write_text('{"epoch": 1, "loss": 1.0, "seconds": 9}\n{"epoch": 2, "loss": 0.6}\n')
    assert isa_check.first_differing_epoch(a, b) == 2
    assert isa_check.first_differing_epoch(a, a) is None


def test_a_data_dir_that_is_not_a_folder_is_one_line_and_exit_2(tmp_path, capsys):
    isa_check = load_script("scripts/foundation/isa_check.py")
    assert isa_check.main(["--data-dir", str(tmp_path / "absent"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a folder" in err[0]
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_missing_nuat_command_is_one_line_and_exit_2(tmp_path, capsys):
    isa_check = load_script("scripts/foundation/isa_check.py")
    assert isa_check.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "runs"),
                           "--nuat", str(tmp_path / "no-nuat")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--nuat" in err and not (tmp_path / "runs").exists()
