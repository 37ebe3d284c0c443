"""The attack generator's state on resume: restored exactly on its own device type (CUDA too: the
state is a CPU byte tensor there, and moving it to the GPU made every CUDA resume fail), reseeded
with a warning where the run resumes on another device type (--device may change on resume).
On a GPU machine the device tests run with "cuda" too (the tests stage of
benchmarks/gpu/run_gpu_bench.sh runs this file)."""

import pytest
import torch

from nuat.errors import RunWarning
from nuat.train.resume import restore_attack_generator

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("saved_device", ["same", None])  # None: a state written before the device was recorded
def test_the_state_of_the_same_device_type_is_restored_exactly(device, saved_device):
    gen = torch.Generator(device=device).manual_seed(7)
    torch.rand(5, generator=gen, device=device)
    state = gen.get_state()
    assert state.device.type == "cpu" and state.dtype == torch.uint8
    want = torch.rand(5, generator=gen, device=device)
    fresh = torch.Generator(device=device).manual_seed(123)
    restore_attack_generator(fresh, state, device if saved_device == "same" else None, seed=0, iteration=9)
    assert torch.equal(torch.rand(5, generator=fresh, device=device), want)


def test_a_state_of_another_device_type_reseeds_with_a_warning():
    cuda_like = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state: 16 bytes (a CPU one: 5,056)
    gen = torch.Generator().manual_seed(1)
    with pytest.warns(RunWarning, match="saved on cuda and cannot be restored on cpu; reseeded"):
        restore_attack_generator(gen, cuda_like, "cuda", seed=3, iteration=40)
    assert torch.equal(torch.rand(4, generator=gen), torch.rand(4, generator=torch.Generator().manual_seed(44)))
    with pytest.warns(RunWarning, match="saved on another device type"):  # an older state: found by its size
        restore_attack_generator(gen, cuda_like, None, seed=3, iteration=40)
    with pytest.raises(RuntimeError):  # the same device type and a state that does not fit: not hidden
        restore_attack_generator(gen, cuda_like, "cpu", seed=3, iteration=40)
