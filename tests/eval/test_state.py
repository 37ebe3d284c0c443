"""The resumable state: round trip, atomic saves, refusing a state of another evaluation."""

import json

import pytest
import torch

from nuat.errors import UsageError
from nuat.eval.state import EvalState, flags_to_text, text_to_flags

HEADER = {"checkpoint_sha256": "ab", "dataset": "mnist", "split": "test", "eps": 0.3, "seed": 0, "batch_size": 4}


def test_flags_round_trip():
    flags = torch.tensor([True, False, False, True])
    assert flags_to_text(flags) == "1001"
    assert torch.equal(text_to_flags("1001"), flags)


def test_state_saves_after_each_batch_and_reloads(tmp_path):
    path = tmp_path / "state.json"
    state = EvalState.open(path, HEADER)
    state.job("pgd@8", {"steps": [7, 20]}, ["pgd-7", "pgd-20"])
    state.add_batch("pgd@8", {"pgd-7": torch.tensor([True, True]), "pgd-20": torch.tensor([True, False])},
                    {"pgd-7": 0.5, "pgd-20": 1.0}, ["a flag"])
    again = EvalState.open(path, HEADER)
    record = again.job("pgd@8", {"steps": [7, 20]}, ["pgd-7", "pgd-20"])
    assert record["batches"] == 1 and record["flags"]["pgd-20"] == "10" and record["messages"] == ["a flag"]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files
    assert json.loads(path.read_text())["header"]["eps"] == 0.3


def test_state_of_another_evaluation_is_refused(tmp_path):
    path = tmp_path / "state.json"
    state = EvalState.open(path, HEADER)
    state.job("fgsm@8", {"eps": 0.3}, ["fgsm"])
    state.save()
    with pytest.raises(UsageError, match="seed: stored 0, now 1"):
        EvalState.open(path, {**HEADER, "seed": 1})
    with pytest.raises(UsageError, match="other parameters"):
        EvalState.open(path, HEADER).job("fgsm@8", {"eps": 0.2}, ["fgsm"])
    assert EvalState.open(path, {**HEADER, "seed": 1}, fresh=True).jobs == {}


def test_state_from_another_device_type_is_refused_naming_both(tmp_path):
    path = tmp_path / "state.json"
    EvalState.open(path, {**HEADER, "device": "cpu"}).save()
    with pytest.raises(UsageError, match=r"started on device type 'cpu', this run uses 'cuda'") as info:
        EvalState.open(path, {**HEADER, "device": "cuda"})
    assert len(str(info.value).splitlines()) == 1 and "--device cpu" in str(info.value)
    assert EvalState.open(path, {**HEADER, "device": "cpu"}).header["device"] == "cpu"


def test_evaluation_records_its_device_type_and_resumes_only_there(tmp_path):
    # CPU and CUDA generators seeded alike draw different numbers: a resume on the other device type
    # would mix two random streams in one set of per-example results
    from torch import nn

    from nuat.data import ArrayImageData
    from nuat.eval.evaluate import EvalOptions, evaluate
    from nuat.eval.registry import Settings
    from nuat.eval.targets import EvalTarget, prepare

    torch.manual_seed(0)
    model = prepare(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), torch.device("cpu"))
    images = torch.randint(0, 256, (8, 1, 4, 4), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    data = ArrayImageData(images, torch.arange(8) % 3, ["a", "b", "c"])
    target = EvalTarget("tiny", tmp_path / "tiny.safetensors", "0" * 64, model)

    def options(device):
        return EvalOptions(attacks="clean,pgd-2", dataset="synthetic", settings=Settings(eps=0.1, pgd_step=0.01),
                           eps_text="0.1", batch_size=4, device=device, progress=False)

    evaluate(target, options("cpu"), tmp_path / "out", data=data)
    state = json.loads((tmp_path / "out" / "state.json").read_text())
    assert state["header"]["device"] == "cpu"
    before = (tmp_path / "out" / "state.json").read_text()
    # refused before anything runs on (or is written for) the other device
    with pytest.raises(UsageError, match="'cpu'.*'cuda'"):
        evaluate(target, options("cuda"), tmp_path / "out", data=data)
    assert (tmp_path / "out" / "state.json").read_text() == before
    evaluate(target, options("cpu"), tmp_path / "out", data=data)  # the same device type resumes


# --- mutation-testing additions: what a resume must refuse

def _tiny(tmp_path, sha="0" * 64):
    from torch import nn

    from nuat.data import ArrayImageData
    from nuat.eval.targets import EvalTarget, prepare

    torch.manual_seed(0)
    model = prepare(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), torch.device("cpu"))
    images = torch.randint(0, 256, (8, 1, 4, 4), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    data = ArrayImageData(images, torch.arange(8) % 3, ["a", "b", "c"])
    return EvalTarget("tiny", tmp_path / "tiny.safetensors", sha, model), data


def _options(**kw):
    from nuat.eval.evaluate import EvalOptions
    from nuat.eval.registry import Settings

    return EvalOptions(**{"attacks": "clean,pgd-2", "dataset": "synthetic",
                          "settings": Settings(eps=0.1, pgd_step=0.01), "eps_text": "0.1", "batch_size": 4,
                          "progress": False, **kw})


def test_resume_refuses_another_checkpoint_or_batch_size(tmp_path):
    # per-example results of another checkpoint (or of batches seeded by another batch index) must
    # never be mixed into this one's
    from nuat.eval.evaluate import evaluate

    target, data = _tiny(tmp_path)
    evaluate(target, _options(), tmp_path / "out", data=data)
    before = (tmp_path / "out" / "state.json").read_text()
    other, _ = _tiny(tmp_path, sha="1" * 64)
    with pytest.raises(UsageError, match="checkpoint_sha256: stored '0+', now '1+'"):
        evaluate(other, _options(), tmp_path / "out", data=data)
    with pytest.raises(UsageError, match="batch_size: stored 4, now 2"):
        evaluate(target, _options(batch_size=2), tmp_path / "out", data=data)
    assert (tmp_path / "out" / "state.json").read_text() == before
    evaluate(other, _options(), tmp_path / "out", data=data, fresh=True)  # --overwrite starts again


def test_evaluate_refuses_more_images_than_the_data(tmp_path):
    from nuat.eval.evaluate import evaluate

    target, data = _tiny(tmp_path)
    for n in (9, 0):
        with pytest.raises(UsageError, match=rf"--n {n} is outside 1\.\.8"):
            evaluate(target, _options(n=n), tmp_path / "out", data=data)
    assert not (tmp_path / "out").exists()
