"""benchmarks/gpu/make_devdata.sh builds what a device command carries beside the tree: the
cifar10-jpeg copy and the Python files of pyautoattack and pytest, no weights, under 64 MiB; a
missing data folder is one line and exit code 2, with nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu" / "make_devdata.sh"


def _run(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], env={**os.environ, "PYTHON": sys.executable, **env},
                          capture_output=True, text=True, timeout=120)


def test_builds_the_carried_folder(real_data_dir, tmp_path):
    pytest.importorskip("pyautoattack")
    dest = tmp_path / "devdata"
    done = _run(DATA=str(real_data_dir), DEST=str(dest))
    assert done.returncode == 0, done.stderr
    files = [p for p in dest.rglob("*") if p.is_file()]
    assert (dest / "cifar10-jpeg" / "cifar10-jpeg.tar.gz").is_file()
    assert (dest / "site" / "pyautoattack" / "__init__.py").is_file() and (dest / "site" / "pytest" / "__init__.py").is_file()
    assert all(p.suffix == ".py" for p in files if "site" in p.relative_to(dest).parts)  # no weights, no caches
    assert sum(p.stat().st_size for p in files) < 64 * 2**20
    assert [p.name for p in tmp_path.iterdir()] == ["devdata"]  # the temporary folder is gone
    # pytest imports from there alone (pyautoattack needs torch, which the device machine has)
    probe = subprocess.run([sys.executable, "-S", "-c", "import pytest; print(pytest.__file__)"],
                           env={"PYTHONPATH": str(dest / "site")}, capture_output=True, text=True, timeout=60)
    assert str(dest) in probe.stdout, probe.stderr


def test_missing_data_is_one_line_and_exit_2(tmp_path):
    dest = tmp_path / "devdata"
    done = _run(DATA=str(tmp_path / "nowhere"), DEST=str(dest))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "cifar10-jpeg" in done.stderr
    assert not dest.exists() and list(tmp_path.iterdir()) == []
