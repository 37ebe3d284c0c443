"""Host reads (operators that make the host wait for a device value), found on the CPU: the
recorder itself, and the training step of every registered method on real MNIST."""

from __future__ import annotations

import pytest
import torch

from nuat.attacks import gama_pgd, ifgsm, pgd, pgd_trace, targeted_pgd
from nuat.bench import host_reads
from nuat.bench.host_reads import record_host_reads
from nuat.bench.runner import SYNC_CHECK_ITERATIONS, BenchConfig, _build, _iterate
from nuat.bench.variants import parse_variant
from nuat.methods.registry import METHODS
from nuat_testing import edge_batch, tiny_cnn


def _kinds(fn) -> list[tuple[str, str]]:
    return [(r.kind, r.op) for r in record_host_reads(fn)]


def test_recorder_sees_each_kind_of_host_read_and_names_the_calling_line():
    x = torch.randn(8)
    assert _kinds(lambda: x.sum().item()) == [("value", "_local_scalar_dense")]
    assert _kinds(lambda: float(x.max())) == [("value", "_local_scalar_dense")]
    assert [k for k, _ in _kinds(lambda: bool(x.max() > 0))] == ["value"]
    assert _kinds(lambda: torch.equal(x, x)) == [("value", "equal")]
    assert _kinds(lambda: x[x > 0]) == [("shape", "index")]
    assert _kinds(lambda: x.nonzero()) == [("shape", "nonzero")]
    assert _kinds(lambda: torch.unique(x.round())) != []
    assert _kinds(lambda: x.repeat_interleave(torch.full((8,), 2))) == [("shape", "repeat_interleave")]
    assert _kinds(lambda: torch.linalg.svdvals(x.view(2, 4))) == [("solver", "_linalg_svd")]
    assert _kinds(lambda: torch.linalg.eigvalsh(torch.eye(3))) == [("solver", "_linalg_eigh")]
    # blocking copies to another device ("meta" stands in for a GPU on a CPU machine)
    assert _kinds(lambda: x.to("meta")) == [("copy", "_to_copy")]
    assert _kinds(lambda: torch.empty(8, device="meta").copy_(x)) == [("copy", "copy_")]
    assert _kinds(lambda: x.to("meta", non_blocking=True)) == []
    [read] = record_host_reads(lambda: x.sum().item())
    assert read.where.endswith("<lambda>") and "test_host_reads.py:" in read.where


def test_recorder_passes_over_work_that_needs_no_host_read():
    x = torch.randn(8, requires_grad=True)

    def step() -> None:
        y = (x * 2).relu()
        y[torch.arange(4)].sum().backward()  # integer indices: the output size is known
        x.detach().repeat_interleave(2)  # integer repeats: no repeat_interleave operator at all
        x.detach().repeat_interleave(torch.full((8,), 2), output_size=16)
        torch.where(x > 0, x, 0.0).mean()
        x.detach().to(torch.float64).clone().copy_(x)  # copies on one device

    assert record_host_reads(step) == []


def test_summary_is_per_iteration_by_site():
    x = torch.randn(4)
    reads = record_host_reads(lambda: [float(x.sum()) for _ in range(4)])
    [(site, per_iteration)] = host_reads.per_iteration(reads, 2).items()
    assert site.startswith("value _local_scalar_dense at ") and per_iteration == 2.0


#: the one host read a step may make outside the nuclear norm: the hybrid trigger's clean loss
#: (Sec. 5.5; documented in docs/methods.md)
HYBRID_READ = "nuat/methods/nuat.py"
NUCLEAR_NORM = "nuat/losses.py"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_training_step_reads_nothing_back_but_the_documented_values(method, real_data_dir):
    """docs/speed.md, "No host synchronisation inside the step": stats stay on the device, and the
    only host reads are the nuclear norm's solver (NuAT family) and the -H variants' trigger."""
    cfg = BenchConfig(methods=[method], data_dir=str(real_data_dir), batch_size=32, warmup=0, steps=1, trials=1)
    t = _build(cfg, method, parse_variant("fp32"), "unused")
    _iterate(t, 1)  # first-iteration set-up (optimiser state) out of the way
    reads = record_host_reads(lambda: _iterate(t, SYNC_CHECK_ITERATIONS))
    solver = [r for r in reads if r.kind == "solver"]
    other = [r for r in reads if r.kind != "solver"]
    assert all(r.where.startswith(NUCLEAR_NORM) for r in solver), solver
    assert bool(solver) == method.startswith("nuat"), reads
    if method.endswith("-h"):
        assert [(r.op, r.where.split(":")[0]) for r in other] == \
            [("_local_scalar_dense", HYBRID_READ)] * SYNC_CHECK_ITERATIONS
    else:
        assert other == []
    assert t.progress.loss_is_finite()


STEPPED_ATTACKS = {  # attack(model, x, y, steps): host reads allowed per call, whatever the steps
    "ifgsm": (lambda m, x, y, n: ifgsm(m, x, y, eps=0.1, steps=n), 0),
    "pgd_trace": (lambda m, x, y, n: pgd_trace(m, x, y, eps=0.1, steps=n, step_size=0.02, readout=(1, n)), 0),
    "gama_pgd": (lambda m, x, y, n: gama_pgd(m, x, y, eps=0.1, steps=n, drops=(n // 2,), guide_steps=1), 0),
    # restarts and targets shrink the batch to the examples still robust: one count per run
    "pgd, 2 restarts": (lambda m, x, y, n: pgd(m, x, y, eps=0.1, steps=n, restarts=2), 4),
    "targeted_pgd, 2 targets": (lambda m, x, y, n: targeted_pgd(m, x, y, eps=0.1, steps=n, targets=2), 2),
}


@pytest.mark.parametrize("name", sorted(STEPPED_ATTACKS))
def test_attack_steps_read_nothing_back(name):
    """An attack keeps each example's first fooling iterate with torch.where, not a boolean index,
    so its steps never wait for the host (nuat.attacks.common.where_examples)."""
    attack, allowed = STEPPED_ATTACKS[name]
    model, (x, y) = tiny_cnn(seed=3), edge_batch(n=64, seed=5)
    for steps in (2, 6):
        reads = record_host_reads(lambda: attack(model, x, y, steps))
        assert len(reads) <= allowed, reads
