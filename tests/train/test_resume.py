"""Fault injection: SIGKILL/SIGTERM at random moments of a real run, resume, compare bitwise."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

ARGS = ["--dataset", "mnist", "--method", "nuat-wa", "--eps", "0.3", "--epochs", "2", "--train-limit", "2000",
        "--batch-size", "100", "--val-per-class", "20", "--save-every", "3", "--final-eval", "0", "--no-progress"]


def nuat_train(out: Path, data: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "nuat", "train", *ARGS, "--data-dir", str(data), "--out", str(out), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def run_to_end(out: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    p = nuat_train(out, data, *extra)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr
    return subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)


def same_weights(a: Path, b: Path) -> bool:
    ta, tb = load_file(str(a)), load_file(str(b))
    return ta.keys() == tb.keys() and all(ta[k].dtype == tb[k].dtype and ta[k].equal(tb[k]) for k in ta)


@pytest.fixture(scope="module")
def reference(real_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    run_to_end(out, real_data_dir)
    return out


def kill_when_training(p: subprocess.Popen, out: Path, rng: random.Random, sig: int, min_states: int = 1) -> None:
    """Wait until the run has saved ``min_states`` states, then a random delay, then the signal."""
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if len(list((out / "state").glob("state-*.safetensors"))) >= min_states:
            break
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.5))
    if p.poll() is None:
        p.send_signal(sig)
    p.communicate(timeout=120)


def test_sigkill_at_random_moments_resumes_bitwise(reference, real_data_dir, tmp_path):
    rng = random.Random(1234)
    out = tmp_path / "run"
    kills = 0
    p = nuat_train(out, real_data_dir)
    kill_when_training(p, out, rng, signal.SIGKILL)
    kills += p.returncode == -signal.SIGKILL
    for _ in range(2):
        if (out / "summary.json").exists():
            break
        p = nuat_train(out, real_data_dir, "--resume", str(out))
        kill_when_training(p, out, rng, signal.SIGKILL)
        kills += p.returncode == -signal.SIGKILL
    if not (out / "summary.json").exists():
        run_to_end(out, real_data_dir, "--resume", str(out))
    assert kills >= 1
    for name in ("last", "last-ema", "best", "best-ema"):
        assert same_weights(reference / f"{name}.safetensors", out / f"{name}.safetensors"), name
    ref_lines = [l.split('"seconds"')[0] for l in (reference / "metrics.jsonl").read_text().splitlines()]
    got_lines = [l.split('"seconds"')[0] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert got_lines == ref_lines  # same epochs, same losses and accuracies, no duplicates


def test_sigterm_saves_and_prints_resume_hint(reference, real_data_dir, tmp_path):
    out = tmp_path / "run"
    p = nuat_train(out, real_data_dir)
    kill_when_training(p, out, random.Random(7), signal.SIGTERM)
    if p.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert p.returncode == 128 + signal.SIGTERM
    run_to_end(out, real_data_dir, "--resume", "auto")
    assert same_weights(reference / "last.safetensors", out / "last.safetensors")


def test_truncated_newest_state_falls_back_to_previous(reference, real_data_dir, tmp_path):
    out = tmp_path / "run"
    p = nuat_train(out, real_data_dir)
    kill_when_training(p, out, random.Random(3), signal.SIGKILL, min_states=2)
    states = sorted((out / "state").glob("state-*.safetensors"))
    if (out / "summary.json").exists() or len(states) < 2:
        pytest.skip("not enough states saved before the kill")
    newest = states[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    done = run_to_end(out, real_data_dir, "--resume", str(out))
    assert "unreadable" in done.stderr and newest.name in done.stderr
    assert same_weights(reference / "last.safetensors", out / "last.safetensors")
