"""BatchLoader: coverage, order from the generator, resumption, file-based prefetching."""

from __future__ import annotations

import pytest
import torch

from nuat.data import ArrayImageData, BatchLoader, load_dataset, subset
from nuat.errors import DataError


def _indexed_data(n: int = 300) -> ArrayImageData:
    """Images whose pixels (0,0,0) and (0,0,1) encode the sample index."""
    images = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    idx = torch.arange(n)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = (idx % 256).to(torch.uint8), (idx // 256).to(torch.uint8)
    images[:, 0, 2:, 2:] = 255
    return ArrayImageData(images, idx % 7, [str(i) for i in range(7)])


def _decode(x: torch.Tensor) -> torch.Tensor:
    q = (x * 255).round().long()
    return q[:, 0, 0, 0] + 256 * q[:, 0, 0, 1]


def _epoch(loader) -> torch.Tensor:
    return torch.cat([_decode(x) for x, _ in loader])


def test_every_index_once_per_epoch_and_types():
    data = _indexed_data()
    loader = BatchLoader(data, 64, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(loader) == 5
    seen = []
    for x, y in loader:
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.device.type == "cpu"
        assert 0 <= x.min() and x.max() == 1.0
        assert torch.equal(y, _decode(x) % 7)
        seen.append(_decode(x))
    assert [len(s) for s in seen] == [64, 64, 64, 64, 44]
    assert torch.equal(torch.cat(seen).sort().values, torch.arange(300))
    second = _epoch(loader)
    assert torch.equal(second.sort().values, torch.arange(300)) and not torch.equal(second, torch.cat(seen))


def test_order_depends_only_on_generator_seed():
    data = _indexed_data()
    a = _epoch(BatchLoader(data, 50, shuffle=True, generator=torch.Generator().manual_seed(3)))
    b = _epoch(BatchLoader(data, 50, shuffle=True, generator=torch.Generator().manual_seed(3)))
    c = _epoch(BatchLoader(data, 50, shuffle=True, generator=torch.Generator().manual_seed(4)))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, torch.randperm(300, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(_epoch(BatchLoader(data, 50)), torch.arange(300))


def test_drop_last_and_indices():
    data = _indexed_data()
    loader = BatchLoader(data, 64, shuffle=True, drop_last=True)
    assert len(loader) == 4 and len(_epoch(loader)) == 256
    idx = torch.arange(0, 300, 3)
    sub = BatchLoader(data, 32, shuffle=True, indices=idx)
    assert len(sub) == 4 and torch.equal(_epoch(sub).sort().values, idx)
    part = subset(data, idx)
    assert torch.equal(_epoch(BatchLoader(part, 32)), idx)


def test_resume_mid_epoch_reproduces_batches():
    data = _indexed_data()
    full = BatchLoader(data, 40, shuffle=True, augment="crop-flip", generator=torch.Generator().manual_seed(9))
    reference = [x for x, _ in full]
    first = BatchLoader(data, 40, shuffle=True, augment="crop-flip", generator=torch.Generator().manual_seed(9))
    it = iter(first)
    for _ in range(3):
        next(it)
    state = first.state_dict()
    assert state["next_batch"] == 3 and state["perm"].shape == (300,)
    it.close()
    resumed = BatchLoader(data, 40, shuffle=True, augment="crop-flip", generator=torch.Generator().manual_seed(123))
    resumed.load_state_dict(state)
    rest = [x for x, _ in resumed]
    assert len(rest) == len(reference) - 3
    assert all(torch.equal(a, b) for a, b in zip(rest, reference[3:]))
    assert resumed.state_dict()["perm"] is None  # epoch finished
    with pytest.raises(ValueError, match="permutation"):
        resumed.load_state_dict({"perm": torch.zeros(300, dtype=torch.int64), "next_batch": 0})


def test_augmentation_is_applied_and_seeded():
    data = _indexed_data(64)
    plain = next(iter(BatchLoader(data, 64)))[0]
    aug1 = next(iter(BatchLoader(data, 64, augment="crop-flip", generator=torch.Generator().manual_seed(1))))[0]
    aug2 = next(iter(BatchLoader(data, 64, augment="crop-flip", generator=torch.Generator().manual_seed(1))))[0]
    assert torch.equal(aug1, aug2) and not torch.equal(aug1, plain)
    assert (aug1.sum(dim=(1, 2, 3)) <= plain.sum(dim=(1, 2, 3)) + 1e-4).all()  # zero padding only removes mass


def test_folder_data_prefetch(tmp_path, fakes):
    classes = ["a", "b", "c"]
    fakes.write_image_folder(tmp_path / "imagefolder" / "train", classes, 5)
    fakes.write_image_folder(tmp_path / "imagefolder" / "test", classes, 1)
    data = load_dataset("imagefolder", "train", tmp_path)
    loader = BatchLoader(data, 4, shuffle=True, generator=torch.Generator().manual_seed(0), augment="crop-flip")
    assert len(loader) == 4
    order = torch.randperm(15, generator=torch.Generator().manual_seed(0))
    ys = []
    for x, y in loader:
        assert x.shape[1:] == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        ys.append(y)
    assert torch.equal(torch.cat(ys), data.labels[order])
    it = iter(loader)  # stopping early ends the prefetch thread
    next(it)
    it.close()
    (tmp_path / "imagefolder" / "train" / "b" / "0002.png").write_bytes(b"broken")
    with pytest.raises(DataError, match="0002.png"):
        for _ in BatchLoader(data, 4):
            pass


def test_folder_random_resized_crops_happen_at_decode_and_resume(tmp_path, fakes):
    fakes.write_image_folder(tmp_path / "imagenet" / "train", ["n01", "n02"], 6, size=(64, 40), fmt="PNG")
    fakes.write_image_folder(tmp_path / "imagenet" / "val", ["n01", "n02"], 1, size=(64, 40), fmt="PNG")
    data = load_dataset("imagenet", "train", tmp_path, image_size=16)

    def make(seed):
        return BatchLoader(data, 4, shuffle=True, augment="random-resized-crop-flip",
                           generator=torch.Generator().manual_seed(seed))

    reference = [x for x, _ in make(3)]
    assert len(reference) == 3 and all(x.shape[1:] == (3, 16, 16) for x in reference)
    assert all(torch.equal(a, b) for a, b in zip(reference, [x for x, _ in make(3)]))
    loader = make(3)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    it.close()
    resumed = make(99)
    resumed.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(reference[1:], [x for x, _ in resumed]))
    # the crops come from the decoding thread (flat-colour images: a device-side resample would
    # agree anyway, so check the call itself)
    seeds = []
    original = type(data).get_batch

    def spy(self, index, augment_seed=None):
        seeds.append(augment_seed)
        return original(self, index, augment_seed)

    type(data).get_batch = spy
    try:
        list(make(3))
    finally:
        type(data).get_batch = original
    assert len(seeds) == 3 and None not in seeds and seeds[1] == seeds[0] + 1


def test_state_saved_after_the_last_batch_resumes_to_an_empty_rest():
    """A state saved after an epoch's last step (e.g. --save-every dividing the epoch) still
    holds the epoch's permutation; loading it continues with nothing left of that epoch, then
    the next epoch runs in full."""
    data = _indexed_data(100)
    loader = BatchLoader(data, 25, shuffle=True, generator=torch.Generator().manual_seed(2))
    it = iter(loader)
    for _ in range(len(loader)):
        next(it)
    state = loader.state_dict()
    assert state["next_batch"] == len(loader) and state["perm"] is not None
    resumed = BatchLoader(data, 25, shuffle=True, generator=torch.Generator().manual_seed(2))
    resumed.load_state_dict(state)
    assert list(resumed) == []
    assert torch.equal(_epoch(resumed).sort().values, torch.arange(100))


def _spy_get_batch(monkeypatch, data):
    """Record (augment_seed, returned batch) of every get_batch call on ``data``'s class."""
    calls = []
    original = type(data).get_batch

    def spy(self, index, augment_seed=None):
        out = original(self, index, augment_seed)
        calls.append((augment_seed, out.clone()))
        return out

    monkeypatch.setattr(type(data), "get_batch", spy)
    return calls


def test_folder_random_resized_crops_are_not_augmented_again_on_the_device(tmp_path, monkeypatch):
    """ImageNet's training view is cut while decoding: the loader yields exactly the decoded
    crops (over 255), with no second crop of them on the device."""
    from PIL import Image

    for split in ("train", "val"):
        folder = tmp_path / "imagenet" / split / "n01"
        folder.mkdir(parents=True)
        for k in range(4):  # a different random pattern per image: any resampling shows
            g = torch.Generator().manual_seed(k)
            Image.fromarray(torch.randint(0, 256, (30, 40, 3), generator=g, dtype=torch.uint8).numpy()).save(
                folder / f"{k}.png")
    data = load_dataset("imagenet", "train", tmp_path, image_size=16)
    calls = _spy_get_batch(monkeypatch, data)
    loader = BatchLoader(data, 2, shuffle=True, augment="random-resized-crop-flip",
                         generator=torch.Generator().manual_seed(0))
    batches = [x for x, _ in loader]
    assert len(calls) == 2 and all(seed is not None for seed, _ in calls)
    for x, (_, decoded) in zip(batches, calls):
        assert torch.equal(x, decoded.float() / 255)


def test_folder_crop_flip_decodes_the_plain_view(tmp_path, fakes, monkeypatch):
    """crop-flip of folder data (imagefolder) works on the decoded squares, on the device: files
    are decoded un-augmented (no random resized crop at decode time)."""
    fakes.write_image_folder(tmp_path / "imagefolder" / "train", ["a", "b"], 3)
    fakes.write_image_folder(tmp_path / "imagefolder" / "test", ["a", "b"], 1)
    data = load_dataset("imagefolder", "train", tmp_path)
    calls = _spy_get_batch(monkeypatch, data)
    list(BatchLoader(data, 4, shuffle=True, augment="crop-flip", generator=torch.Generator().manual_seed(0)))
    assert len(calls) == 2 and all(seed is None for seed, _ in calls)


def test_labels_outside_the_classes_are_refused():
    images = torch.zeros(3, 1, 2, 2, dtype=torch.uint8)
    assert ArrayImageData(images, torch.tensor([0, 1, 2]), ["a", "b", "c"]).num_classes == 3
    for bad in ([0, 1, 3], [0, -1, 2]):  # one past the last class; negative
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
            ArrayImageData(images, torch.tensor(bad), ["a", "b", "c"])
