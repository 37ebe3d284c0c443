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
