"""benchmarks/gpu/run_gpu_bench.sh, the script a device session runs once (a broken stage costs
scarce GPU minutes): its lease, dry-run on the CPU with MNIST and small-cnn, packs each stage's
results into one archive, and an unknown stage prints the usage with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu" / "run_gpu_bench.sh"


def _env(out: Path, data: Path, **extra: str) -> dict[str, str]:
    python = sys.executable
    return {**os.environ, "OUT": str(out), "DATA": str(data), "PYTHON": python, "NUAT": f"{python} -m nuat",
            "NUAT_COMMIT": "test", "DEVICE": "cpu", "DATASET": "mnist", "MODEL": "small-cnn", "BATCH": "32",
            "STEPS": "1", "TRIALS": "1", "PYTHONPATH": str(REPO / "src"), **extra}


@pytest.mark.slow
def test_lease_dry_run_packs_the_bench_results(real_data_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    env = _env(out, real_data_dir, STAGES="env bench", METHODS="erm,nuat", PROFILE="1",
               BENCH_VARIANTS="fp32,nuclear-host-svd")
    done = subprocess.run(["bash", str(SCRIPT), "lease"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "== stage env took" in done.stdout and "== stage bench took" in done.stdout
    assert "ended with exit" not in done.stdout  # no stage failed or ran out of time
    with tarfile.open(out / "gpu-results.tar.gz") as tar:
        names = {Path(n).name for n in tar.getnames()}
        assert {"bench.json", "bench.md", "bench.log"} <= names
        result = json.load(tar.extractfile("./bench.json"))
    rows = {(m["method"], m["variant"]) for m in result["methods"]}
    assert rows == {(m, v) for m in ("erm", "nuat") for v in ("fp32", "nuclear-host-svd")}
    assert result["environment"]["commit"] == "test"


def test_unknown_stage_prints_the_usage(tmp_path, real_data_dir):
    done = subprocess.run(["bash", str(SCRIPT), "nonsense"], env=_env(tmp_path, real_data_dir),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "run_gpu_bench.sh env" in done.stdout
