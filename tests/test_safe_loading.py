"""Loading checkpoints never unpickles untrusted data."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

import nuat
from nuat.checkpoints import load_state_dict_file, save_model
from nuat.errors import CheckpointError
from nuat.models import build_model


class Payload:
    """Unpickling this object would create a file (a stand-in for arbitrary code)."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_pickle_payload_is_refused_and_never_executed(tmp_path):
    target = tmp_path / "pwned.txt"
    bad = tmp_path / "model.pt"
    with open(bad, "wb") as fh:
        pickle.dump({"weight": Payload(target)}, fh)
    with pytest.raises(CheckpointError) as err:
        load_state_dict_file(bad)
    assert "refusing" in str(err.value) and "\n" not in str(err.value)
    assert not target.exists()
    # the same through nuat.load_model (not a safetensors file) and the zip format of torch.save
    with pytest.raises(CheckpointError):
        nuat.load_model(bad)
    zipped = tmp_path / "zipped.pt"
    torch.save({"weight": Payload(target)}, zipped)  # torch.save pickles the payload object
    target.unlink(missing_ok=True)
    with pytest.raises(CheckpointError):
        load_state_dict_file(zipped)
    assert not target.exists()


def test_plain_state_dict_pt_is_read_with_weights_only(tmp_path):
    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
    path = tmp_path / "plain.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    state = load_state_dict_file(path)
    assert state.keys() == model.state_dict().keys()


def test_safetensors_without_nuat_metadata_and_truncated_files(tmp_path):
    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
    plain = tmp_path / "plain.safetensors"
    save_file(model.state_dict(), str(plain))
    with pytest.raises(CheckpointError, match="no nuat metadata"):
        nuat.load_model(plain)
    good = tmp_path / "good.safetensors"
    save_model(good, model, dataset="mnist", eps=0.3)
    assert nuat.load_model(good).checkpoint_metadata["dataset"] == "mnist"
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        nuat.load_model(cut)


def test_save_model_is_atomic_no_temp_left(tmp_path):
    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
    save_model(tmp_path / "m.safetensors", model, epoch=1)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
