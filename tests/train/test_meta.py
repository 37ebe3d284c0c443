"""Provenance: the machine line names the CPU and the instruction set torch's kernels use, since
those decide whether a CPU run reproduces bit for bit (docs/reliability.md)."""

import os
import subprocess
import sys

import pytest
import torch

from nuat.train.meta import cpu_kernels, cpu_name, machine


def test_cpu_name_reads_the_model_name(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B45\nflags\t\t: avx2\n")
    assert cpu_name(info) == "AMD EPYC 9B45"


def test_cpu_name_without_cpuinfo_falls_back(tmp_path):
    assert cpu_name(tmp_path / "absent")  # platform's answer or "unknown", never an error


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU line is written where no GPU is present")
def test_machine_line_names_kernels_and_threads():
    line = machine()
    assert f"{torch.backends.cpu.get_cpu_capability()} kernels" in line
    assert f"torch threads {torch.get_num_threads()}" in line
    assert f"torch {torch.__version__}" in line


def test_capped_instruction_sets_are_recorded():
    # ATen reads ATEN_CPU_CAPABILITY when torch loads, so the cap needs a fresh process
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}
    out = subprocess.run([sys.executable, "-c", "from nuat.train.meta import cpu_kernels; print(cpu_kernels())"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == "DEFAULT kernels, oneDNN up to SSE41"


def test_uncapped_kernels_name_no_onednn_cap(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert cpu_kernels() == f"{torch.backends.cpu.get_cpu_capability()} kernels"
