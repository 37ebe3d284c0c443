"""Loading checkpoints never unpickles untrusted data."""

import json
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


def test_malformed_nuat_metadata_is_one_checkpoint_error_line(tmp_path):
    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    spec = '{"name": "small-cnn", "num_classes": 10, "in_channels": 1, "image_size": 28}'
    cases = {
        "nospec": ({"format": "nuat-model/1"}, "without a model_spec"),
        "badjson": ({"format": "nuat-model/1", "model_spec": "{not json"}, "'model_spec' is not JSON"),
        "badvalue": ({"format": "nuat-model/1", "model_spec": spec, "eps": "0.3 oops"}, "'eps' is not JSON"),
        "specstr": ({"format": "nuat-model/1", "model_spec": '"small-cnn"'}, "malformed model_spec"),
        "specbad": ({"format": "nuat-model/1", "model_spec": '{"name": "small-cnn"}'}, "cannot be built"),
    }
    for name, (metadata, expected) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_file(state, str(path), metadata=metadata)
        with pytest.raises(CheckpointError) as err:
            nuat.load_model(path)
        msg = str(err.value)
        assert expected in msg and str(path) in msg and "\n" not in msg, msg


def test_weights_that_do_not_fit_the_spec_say_which(tmp_path):
    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
    other = build_model("small-cnn", num_classes=7, in_channels=1, image_size=28)  # a 7-class head
    meta = {"format": "nuat-model/1", "model_spec": json.dumps(model.model_spec)}
    path = tmp_path / "shape.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path), metadata=meta)
    with pytest.raises(CheckpointError) as err:
        nuat.load_model(path)
    msg = str(err.value)
    assert "\n" not in msg and "2 shape mismatch(es), first" in msg and "(7, " in msg and "(10, " in msg, msg
    keys = {k: v.contiguous() for k, v in model.state_dict().items()}
    first = next(iter(keys))
    keys["extra.weight"] = keys.pop(first)
    path = tmp_path / "keys.safetensors"
    save_file(keys, str(path), metadata=meta)
    with pytest.raises(CheckpointError) as err:
        nuat.load_model(path)
    msg = str(err.value)
    assert f"1 missing key(s), first '{first}'" in msg and "first 'extra.weight'" in msg and "\n" not in msg, msg


def test_load_model_on_a_folder_or_a_pt_file_says_what_to_give(tmp_path):
    """A run folder names the checkpoint to give; a .pt state dict says it needs --model and --dataset
    (not just a safetensors parser error)."""
    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
    save_model(tmp_path / "best.safetensors", model, dataset="mnist", eps=0.3)
    with pytest.raises(CheckpointError, match=r"is a folder; give a checkpoint file in it \(it holds best\.safetensors\)"):
        nuat.load_model(tmp_path)
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match=r"needs its architecture and data set \(nuat eval and nuat sanity: --model and --dataset\)"):
        nuat.load_model(tmp_path / "plain.pt")


def test_pt_with_non_tensor_values_is_refused_and_load_model_returns_eval_mode(tmp_path):
    mixed = tmp_path / "mixed.pt"
    torch.save({"weight": torch.zeros(2), "epoch": 3}, mixed)  # weights_only can read it, but it is no state dict
    with pytest.raises(CheckpointError, match="dict of tensors"):
        load_state_dict_file(mixed)
    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28).train()
    path = tmp_path / "m.safetensors"
    save_model(path, model, dataset="mnist")
    assert not nuat.load_model(path).training


def test_plain_state_dicts_say_how_to_load_them_from_python_and_where_a_nested_one_sits(tmp_path):
    # a library user calling nuat.load_model was told only "give --model" (a CLI option), and a
    # training script's {"model": state_dict, "epoch": 3} only "expected a dict of tensors"
    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
    plain = tmp_path / "plain.safetensors"
    save_file(model.state_dict(), str(plain))
    with pytest.raises(CheckpointError, match=r"load_state_dict\(nuat\.checkpoints\.load_state_dict_file\(path\)\)"):
        nuat.load_model(plain)
    model.load_state_dict(load_state_dict_file(plain))  # the way the message names works
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"model": model.state_dict(), "epoch": 3, "ema": model.state_dict()}, wrapped)
    with pytest.raises(CheckpointError, match=r"under 'model', 'ema': save that entry alone "
                                              r"\(torch\.save\(checkpoint\['model'\], path\)\)"):
        load_state_dict_file(wrapped)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_wrapper_prefixes_are_taken_off_in_either_format(tmp_path, prefix, suffix):
    """'module.' was stripped from .pt files only (a DataParallel safetensors file then did not fit),
    and torch.compile's '_orig_mod.' from neither."""
    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
    wrapped = {f"{prefix}{k}": v.contiguous() for k, v in model.state_dict().items()}
    path = tmp_path / f"w{suffix}"
    save_file(wrapped, str(path)) if suffix == ".safetensors" else torch.save(wrapped, path)
    loaded = load_state_dict_file(path)
    assert loaded.keys() == model.state_dict().keys()
    other = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
    other.load_state_dict(loaded)


def test_a_prefix_only_some_keys_have_stays():
    from nuat.checkpoints import _unwrapped

    state = {"module.a": torch.zeros(1), "b": torch.zeros(1)}
    assert _unwrapped(state).keys() == state.keys()
