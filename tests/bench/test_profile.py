"""``nuat bench --profile``: the union of kernel intervals, per-iteration counts on a real run, the report."""

from __future__ import annotations

import random

import pytest
import torch

from nuat.bench.profile import _union_us, markdown_section, profile_iterations
from nuat.bench.runner import BenchConfig, _build, _iterate, run_bench
from nuat.bench.variants import parse_variant
from nuat.cli import main


def test_union_of_intervals_against_a_grid():
    rng = random.Random(0)
    for _ in range(200):
        spans = []
        for _ in range(rng.randint(0, 8)):
            start = rng.randint(0, 60)
            spans.append((float(start), float(start + rng.randint(0, 15))))
        covered = {t for a, b in spans for t in range(int(a), int(b))}  # unit cells [t, t + 1)
        assert _union_us(spans) == len(covered)
    assert _union_us([(0.0, 10.0), (2.0, 3.0), (9.5, 12.0)]) == 12.0  # nested and overlapping


def test_profile_counts_per_iteration_on_real_data(real_data_dir, tmp_path):
    torch.set_num_threads(1)
    cfg = BenchConfig(methods=["nuat"], batch_size=32, steps=1, trials=1, warmup=0, data_dir=str(real_data_dir),
                      device="cpu", variants=[parse_variant("fp32")]).validate()
    t = _build(cfg, "nuat", cfg.variants[0], str(tmp_path))
    _iterate(t, 2)  # past first-call set-up (momentum buffers)
    two = profile_iterations(lambda: _iterate(t, 2), 2, torch.device("cpu"))
    four = profile_iterations(lambda: _iterate(t, 4), 4, torch.device("cpu"))
    assert two["device_busy_ms"] is None and two["kernels"] is None and two["top_ops_clock"] == "cpu"
    assert two["aten_ops"] == pytest.approx(four["aten_ops"], rel=0.02)  # per iteration, not per block
    assert 0 < len(two["top_ops"]) <= 8
    assert any("conv" in op["name"] for op in two["top_ops"])
    selfs = [op["self_ms"] for op in two["top_ops"]]
    assert selfs == sorted(selfs, reverse=True) and selfs[0] > 0


def test_bench_profile_ranks_methods_by_operator_calls(real_data_dir):
    torch.set_num_threads(1)
    cfg = BenchConfig(methods=["erm", "nuat", "pgd-at"], batch_size=32, steps=1, trials=1, warmup=1,
                      data_dir=str(real_data_dir), device="cpu", profile=2)
    result = run_bench(cfg, log=lambda line: None)
    calls = {m["method"]: m["profile"]["aten_ops"] for m in result["methods"]}
    # ERM: one forward and backward; NuAT adds an attack step and a second pass; PGD-AT ten attack steps
    assert calls["erm"] < calls["nuat"] < calls["pgd-at"]
    assert result["config"]["profile"] == 2
    lines = markdown_section(result["methods"])
    assert lines[0] == "## Profile (torch.profiler, 2 untimed iterations each)"
    assert "| erm | fp32 |" in "\n".join(lines) and "- pgd-at/fp32: `" in "\n".join(lines)


def test_profile_section_on_cuda_results():
    methods = [{"method": "nuat", "variant": "fast", "seconds_per_iteration": {"median": 0.040},
                "profile": {"iterations": 3, "aten_ops": 900.0, "device_busy_ms": 30.0, "kernels": 410.0,
                            "top_ops_clock": "device",
                            "top_ops": [{"name": "aten::convolution_backward", "calls": 40.0, "self_ms": 12.5}]}}]
    text = "\n".join(markdown_section(methods))
    assert "| nuat | fast | 40.00 | 30.00 | 0.75 | 410 | 900 |" in text
    assert "`aten::convolution_backward` 40x 12.50" in text
    assert markdown_section([{"method": "erm"}]) == []


def test_profile_argument_errors(capsys):
    assert main(["bench", "--methods", "erm", "--profile", "-1"]) == 2
    assert "--profile -1 is invalid" in capsys.readouterr().err
