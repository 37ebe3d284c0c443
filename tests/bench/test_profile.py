"""``nuat bench --profile``: the union of kernel intervals, per-iteration counts on a real run, the report."""

from __future__ import annotations

import random

import pytest
import torch

from nuat.bench.profile import _union_us, markdown_section, profile_floor, profile_iterations
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
    passes = result["passes"]["fp32"]["profile"]
    assert set(passes) == {"forward", "forward_input_backward", "forward_full_backward", "optimizer_step"}
    assert passes["forward"]["aten_ops"] < passes["forward_input_backward"]["aten_ops"]
    for m in result["methods"]:
        p = m["profile"]
        assert p["floor_device_busy_ms"] is None  # CPU
        # the loop's step does the passes and more (data, zero_grad, statistics, the attack's projection)
        assert 0 < p["floor_aten_ops"] <= p["aten_ops"]
    assert result["config"]["profile"] == 2
    lines = markdown_section(result["methods"])
    assert lines[0] == "## Profile (torch.profiler, 2 untimed iterations each)"
    assert "| erm | fp32 |" in "\n".join(lines) and "- pgd-at/fp32: `" in "\n".join(lines)


def test_profile_floor_is_pass_counts_times_pass_figures():
    def pass_(calls, busy):
        return {"aten_ops": calls, "device_busy_ms": busy}
    probes = {"forward": pass_(10, 1.0), "forward_input_backward": pass_(25, 2.5),
              "forward_full_backward": pass_(30, 3.0), "optimizer_step": pass_(4, 0.5)}
    # NuAT [3, 1, 2]: 3 f + (fi - f) + 2 (ff - f) + opt
    assert profile_floor([3, 1, 2], probes) == {"floor_aten_ops": 30 + 15 + 40 + 4,
                                                "floor_device_busy_ms": 3.0 + 1.5 + 4.0 + 0.5}
    cpu = {k: {**v, "device_busy_ms": None} for k, v in probes.items()}
    assert profile_floor([1, 0, 1], cpu) == {"floor_aten_ops": 34, "floor_device_busy_ms": None}


def test_profile_section_on_cuda_results():
    methods = [{"method": "nuat", "variant": "fast", "seconds_per_iteration": {"median": 0.040},
                "profile": {"iterations": 3, "aten_ops": 900.0, "device_busy_ms": 30.0, "kernels": 410.0,
                            "floor_aten_ops": 700.0, "floor_device_busy_ms": 28.5,
                            "top_ops_clock": "device",
                            "top_ops": [{"name": "aten::convolution_backward", "calls": 40.0, "self_ms": 12.5}]}}]
    text = "\n".join(markdown_section(methods))
    assert "| nuat | fast | 40.00 | 30.00 | 28.50 | 0.75 | 410 | 900 | 700 |" in text
    assert "`aten::convolution_backward` 40x 12.50" in text
    assert markdown_section([{"method": "erm"}]) == []


def test_profile_argument_errors(capsys):
    assert main(["bench", "--methods", "erm", "--profile", "-1"]) == 2
    assert "--profile -1 is invalid" in capsys.readouterr().err
