"""ImageFolder trees, the cifar10-jpeg tarball and decode cache, ImageNet and ImageNet-100 layouts."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import nuat.data.folder as folder_mod
from nuat.data import ArrayImageData, FolderImageData, load_dataset, subset
from nuat.data.folder import interleave_classes
from nuat.errors import DataError, UsageError

CLASSES = ["cat", "ant", "bee"]  # deliberately unsorted: labels follow sorted names


def test_imagefolder_png_lazy(tmp_path, fakes):
    fakes.write_image_folder(tmp_path / "imagefolder" / "train", CLASSES, 3, fmt="PNG")
    fakes.write_image_folder(tmp_path / "imagefolder" / "val", CLASSES, 2, fmt="PNG")
    d = load_dataset("imagefolder", "train", tmp_path)
    assert isinstance(d, FolderImageData) and d.classes == ["ant", "bee", "cat"]
    assert len(d) == 9 and d.labels.tolist() == [0, 1, 2] * 3  # classes interleaved
    assert d.image_shape == (3, 32, 32)
    x = d.get_batch(torch.tensor([0, 8, 4]))
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.uint8
    # "ant" was written as label 1 of CLASSES, image k=0: red = 30, green = 10
    assert x[0, :, 5, 5].tolist() == [30, 10, 128]
    assert x[1, :, 0, 0].tolist() == [10, 90, 128]  # cat (written label 0), k=2
    test = load_dataset("imagefolder", "test", tmp_path)  # test falls back to val/
    assert len(test) == 6
    part = subset(d, torch.tensor([8, 0]))
    assert isinstance(part, FolderImageData) and part.labels.tolist() == [2, 0]
    assert torch.equal(part.get_batch(torch.tensor([0])), d.get_batch(torch.tensor([8])))


def test_imagefolder_jpeg_resized(tmp_path, fakes):
    fakes.write_image_folder(tmp_path / "imagefolder" / "train", ["a", "b"], 2, size=(40, 30), fmt="JPEG")
    fakes.write_image_folder(tmp_path / "imagefolder" / "test", ["a", "b"], 1, size=(40, 30), fmt="JPEG")
    d = load_dataset("imagefolder", "train", tmp_path, image_size=16)
    x = d.get_batch(torch.arange(4))
    assert x.shape == (4, 3, 16, 16)
    assert (x[3].float() - torch.tensor([30.0, 50.0, 128.0])[:, None, None]).abs().max() <= 4
    native = load_dataset("imagefolder", "train", tmp_path)  # shorter side of the first image
    assert native.image_shape == (3, 30, 30)


def test_imagefolder_errors(tmp_path, fakes):
    (tmp_path / "imagefolder" / "train" / "a").mkdir(parents=True)
    (tmp_path / "imagefolder" / "test" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no .jpg/.jpeg/.png images"):
        load_dataset("imagefolder", "train", tmp_path)
    (tmp_path / "imagefolder" / "train" / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "imagefolder" / "train" / "a" / "ok.png").write_bytes(fakes.image_bytes(fakes.make_image(0, 0), "PNG"))
    d = load_dataset("imagefolder", "train", tmp_path, image_size=32)
    with pytest.raises(DataError, match="broken.jpg"):
        d.get_batch(torch.tensor([0]))


def test_interleave_classes_balances_every_prefix():
    labels = [0] * 5 + [1] * 2 + [2] * 3
    order = interleave_classes(labels)
    assert sorted(order) == list(range(10))
    assert [labels[i] for i in order] == [0, 1, 2, 0, 1, 2, 0, 2, 0, 0]
    assert order[:3] == [0, 5, 7] and order[3:6] == [1, 6, 8]  # rank within a class is kept
    assert interleave_classes(["b", "b", "a"]) == [0, 2, 1] and interleave_classes([]) == []


def test_cifar10_jpeg_tar_sorted_and_cached(tmp_path, fakes, monkeypatch):
    tar = tmp_path / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
    fakes.write_jpeg_tar(tar, CLASSES, {"train": 3, "test": 2})
    d = load_dataset("cifar10-jpeg", "train", tmp_path)
    assert isinstance(d, ArrayImageData) and d.images.shape == (9, 3, 32, 32) and d.images.dtype == torch.uint8
    assert d.classes == ["ant", "bee", "cat"] and d.labels.tolist() == [0, 1, 2] * 3
    # file name order within a class, classes interleaved: the green channel encodes the file number k
    assert (d.images[:, 1, 16, 16].float() - torch.tensor([10] * 3 + [50] * 3 + [90] * 3)).abs().max() <= 3
    assert len(load_dataset("cifar10-jpeg", "test", tmp_path)) == 6
    caches = sorted(p.name for p in (tmp_path / "decoded").iterdir())
    assert len(caches) == 2 and all(n.startswith("cifar10-jpeg-") and n.endswith(".npz") for n in caches)
    with np.load(tmp_path / "decoded" / caches[1], allow_pickle=False) as z:  # readable without pickle
        assert z["images"].shape == (9, 3, 32, 32)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(folder_mod, "decode_images", no_decoding)
    again = load_dataset("cifar10-jpeg", "train", tmp_path)
    assert torch.equal(again.images, d.images) and torch.equal(again.labels, d.labels)
    os.utime(tar, ns=(1, 1))  # a changed source invalidates the cache
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset("cifar10-jpeg", "train", tmp_path)


def test_decode_cache_is_per_image_size(tmp_path, fakes):
    tar = tmp_path / "cifar10-jpeg.tar.gz"
    fakes.write_jpeg_tar(tar, CLASSES, {"train": 2})
    assert folder_mod.cached_decode("demo", "train", tar, 32).image_shape == (3, 32, 32)
    assert folder_mod.cached_decode("demo", "train", tar, 16).image_shape == (3, 16, 16)  # not the 32-px cache
    assert folder_mod.cached_decode("demo", "train", tar, 32).image_shape == (3, 32, 32)
    assert len(list((tmp_path / "decoded").iterdir())) == 2


def test_cifar10_jpeg_unpacked_and_prefixed_tar(tmp_path, fakes):
    fakes.write_image_folder(tmp_path / "a" / "cifar10-jpeg" / "train", CLASSES, 2, fmt="JPEG")
    fakes.write_image_folder(tmp_path / "a" / "cifar10-jpeg" / "test", CLASSES, 1, fmt="JPEG")
    unpacked = load_dataset("cifar10-jpeg", "train", tmp_path / "a")
    fakes.write_jpeg_tar(tmp_path / "b" / "cifar10-jpeg" / "cifar10-jpeg.tar.gz", CLASSES,
                         {"train": 2, "test": 1}, prefix="./cifar10-jpeg/")
    packed = load_dataset("cifar10-jpeg", "train", tmp_path / "b")
    assert torch.equal(unpacked.labels, packed.labels)
    assert (unpacked.images.float() - packed.images.float()).abs().max() <= 3


def test_imagenet_layout(tmp_path, fakes):
    fakes.write_image_folder(tmp_path / "imagenet" / "train", ["n01", "n02"], 2, size=(48, 40), fmt="JPEG")
    fakes.write_image_folder(tmp_path / "imagenet" / "val", ["n01", "n02"], 1, size=(48, 40), fmt="JPEG")
    train = load_dataset("imagenet", "train", tmp_path)
    assert train.image_shape == (3, 224, 224) and len(train) == 4
    assert train.resize_to == 256  # un-augmented training images (validation) get the evaluation view
    test = load_dataset("imagenet", "test", tmp_path, image_size=28)  # "test" reads val/
    assert isinstance(test, FolderImageData) and len(test) == 2 and test.resize_to == 32
    assert test.get_batch(torch.tensor([1])).shape == (1, 3, 28, 28)


def test_imagenet100_class_list(tmp_path, fakes):
    wnids = ["n0", "n1", "n2", "n3"]
    fakes.write_image_folder(tmp_path / "imagenet" / "train", wnids, 2)
    fakes.write_image_folder(tmp_path / "imagenet" / "val", wnids, 1)
    with pytest.raises(DataError, match="imagenet-100"):
        load_dataset("imagenet-100", "train", tmp_path)
    listing = tmp_path / "my-classes.txt"
    listing.write_text("# two classes\nn3\n\nn1\n")
    d = load_dataset("imagenet-100", "train", tmp_path, class_list=listing, image_size=32)
    assert d.classes == ["n3", "n1"] and len(d) == 4 and d.labels.tolist() == [0, 1, 0, 1]
    assert d.get_batch(torch.tensor([0]))[0, :, 3, 3].tolist() == [70, 10, 128]  # written as label 3
    (tmp_path / "imagenet-100").mkdir()
    (tmp_path / "imagenet-100" / "classes.txt").write_text("n2\nn0\nn1\n")
    d = load_dataset("imagenet-100", "test", tmp_path, image_size=32)
    assert d.classes == ["n2", "n0", "n1"] and len(d) == 3
    (tmp_path / "imagenet-100" / "classes.txt").write_text("n2\nn9\n")
    with pytest.raises(DataError, match="n9"):
        load_dataset("imagenet-100", "train", tmp_path)


def _write_coordinate_images(split_dir, n: int, size=(96, 48)) -> None:
    """PNGs (lossless) whose red channel is the column and green the row, scaled to 0..255."""
    from PIL import Image

    w, h = size
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    img = np.stack([xs * 255 // (w - 1), ys * 255 // (h - 1), np.full_like(xs, 128)], -1).astype(np.uint8)
    (split_dir / "n01").mkdir(parents=True, exist_ok=True)
    for k in range(n):
        Image.fromarray(img).save(split_dir / "n01" / f"{k}.png")


def test_imagenet_training_view_crops_the_original(tmp_path):
    _write_coordinate_images(tmp_path / "imagenet" / "train", 1)
    _write_coordinate_images(tmp_path / "imagenet" / "val", 1)
    data = load_dataset("imagenet", "train", tmp_path, image_size=32)
    centre = data.get_batch(torch.tensor([0]))[0].float()
    # the un-augmented view: 96 x 48 resized to 74 x 37 (shorter side 256/224 of 32), columns
    # 21..52 of that kept: original columns 27.5..68.5 (pixel centres), red 74..184
    assert abs(centre[0].min().item() - 74) < 4 and abs(centre[0].max().item() - 184) < 4
    crops = torch.stack([data.get_batch(torch.tensor([0]), augment_seed=s)[0] for s in range(200)]).float()
    assert torch.equal(crops[7], data.get_batch(torch.tensor([0]), augment_seed=7)[0].float())  # seeded
    red, green = crops[:, 0], crops[:, 1]
    # columns come from the whole 96-pixel width, beyond the central square the old decoder kept
    assert red.amin().item() < 30 and red.amax().item() > 225
    step = red[:, 16, 1:] - red[:, 16, :-1]  # each crop runs left-to-right or, flipped, right-to-left
    forward, backward = (step >= 0).all(1), (step <= 0).all(1)
    assert (forward | backward).all() and 0.35 < forward.float().mean().item() < 0.65
    assert (green[:, 1:, 16] >= green[:, :-1, 16]).all()  # rows never flip
    widths = red[:, 16, :].amax(1) - red[:, 16, :].amin(1)
    assert widths.min().item() < 60 and widths.max().item() > 150  # crop sizes vary (areas 8%..100%)


def test_decode_threads_do_not_change_the_batch(tmp_path, monkeypatch):
    _write_coordinate_images(tmp_path / "imagenet" / "train", 6)
    _write_coordinate_images(tmp_path / "imagenet" / "val", 1)
    data = load_dataset("imagenet", "train", tmp_path, image_size=24)
    index = torch.tensor([5, 0, 3, 3, 1])
    batches = {}
    for threads in (1, 3):
        data.decode_threads = threads
        batches[threads] = (data.get_batch(index), data.get_batch(index, augment_seed=11))
    assert torch.equal(batches[1][0], batches[3][0]) and torch.equal(batches[1][1], batches[3][1])
    crops = batches[3][1]
    assert not torch.equal(crops[2], crops[3])  # the same file twice in a batch: two different crops
    assert subset(data, torch.tensor([0, 1])).decode_threads == 3
    monkeypatch.setenv("NUAT_DECODE_THREADS", "2")
    assert load_dataset("imagenet", "train", tmp_path).decode_threads == 2
    monkeypatch.setenv("NUAT_DECODE_THREADS", "0")
    with pytest.raises(UsageError, match="NUAT_DECODE_THREADS='0'"):
        load_dataset("imagenet", "train", tmp_path)
    monkeypatch.setenv("NUAT_DECODE_THREADS", "2")
    (tmp_path / "imagenet" / "train" / "n01" / "4.png").write_bytes(b"broken")
    with pytest.raises(DataError, match="4.png"):
        data.get_batch(torch.tensor([0, 4, 1]), augment_seed=0)


def _decode_in_child(data, queue):
    queue.put(data.get_batch(torch.tensor([0, 1, 2]), augment_seed=5).numpy())


def test_decode_pool_survives_a_fork(tmp_path):
    import multiprocessing

    _write_coordinate_images(tmp_path / "imagenet" / "train", 3)
    _write_coordinate_images(tmp_path / "imagenet" / "val", 1)
    data = load_dataset("imagenet", "train", tmp_path, image_size=16)
    data.decode_threads = 2
    expected = data.get_batch(torch.tensor([0, 1, 2]), augment_seed=5)  # the parent's pool exists now
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_decode_in_child, args=(data, queue))
    child.start()
    try:
        got = queue.get(timeout=60)  # the parent's pool threads are not in the child: it must make its own
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert np.array_equal(got, expected.numpy())


def test_training_view_is_crop_resize_flip_with_per_image_draws(tmp_path):
    from PIL import Image

    from nuat.data.augment import random_resized_crop_box
    from nuat.data.imagedata import _SEED_STRIDE

    _write_coordinate_images(tmp_path / "imagenet" / "train", 2)
    _write_coordinate_images(tmp_path / "imagenet" / "val", 1)
    data = load_dataset("imagenet", "train", tmp_path, image_size=20)
    got = data.get_batch(torch.tensor([1, 0]), augment_seed=123)
    for k, i in enumerate([1, 0]):  # per image: its own generator, from the batch seed and its position
        g = torch.Generator().manual_seed((123 + k * _SEED_STRIDE) % 2**63)
        left, top, w, h = random_resized_crop_box(96, 48, g)
        with Image.open(data.paths[i]) as img:
            ref = img.convert("RGB").crop((left, top, left + w, top + h)).resize((20, 20), Image.BILINEAR)
        if float(torch.rand((), generator=g)) < 0.5:
            ref = ref.transpose(Image.FLIP_LEFT_RIGHT)
        assert torch.equal(got[k], torch.from_numpy(np.array(ref)).permute(2, 0, 1))


def test_a_folder_with_only_the_test_split_serves_the_test_split(tmp_path, fakes):
    """Presence is per split: evaluating needs only the test files on disk (ImageNet val/, CIFAR test.bin)."""
    from nuat.data import find_root

    fakes.write_image_folder(tmp_path / "imagenet" / "val", ["n01", "n02"], 1, size=(40, 40), fmt="JPEG")
    assert len(load_dataset("imagenet", "test", tmp_path, image_size=16)) == 2
    with pytest.raises(DataError, match="not found"):
        load_dataset("imagenet", "train", tmp_path)
    fakes.write_image_folder(tmp_path / "imagenet-100" / "val", ["n01"], 2, size=(40, 40), fmt="JPEG")
    assert len(load_dataset("imagenet-100", "test", tmp_path, image_size=16)) == 2  # a pre-cut copy, val/ only
    fakes.write_image_folder(tmp_path / "imagefolder" / "test", CLASSES, 1)
    assert len(load_dataset("imagefolder", "test", tmp_path)) == 3
    fakes.write_cifar10(tmp_path / "cifar10" / "cifar-10-batches-bin")
    for i in range(1, 6):
        (tmp_path / "cifar10" / "cifar-10-batches-bin" / f"data_batch_{i}.bin").unlink()
    assert len(load_dataset("cifar10", "test", tmp_path)) == 4
    with pytest.raises(DataError, match="data_batch_1"):
        load_dataset("cifar10", "train", tmp_path)
    fakes.write_cifar100(tmp_path / "cifar100")
    (tmp_path / "cifar100" / "train.bin").unlink()
    assert len(load_dataset("cifar100", "test", tmp_path)) == 6
    fakes.write_mnist(tmp_path / "mnist")
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (tmp_path / "mnist" / name).unlink()
    assert len(load_dataset("mnist", "test", tmp_path)) == 20
    with pytest.raises(DataError):  # without a split, a root must hold every split
        find_root("mnist", tmp_path)
    assert find_root("mnist", tmp_path, split="test") == tmp_path


def test_decode_bar_follows_the_progress_setting(tmp_path, fakes, monkeypatch):
    import tqdm

    seen = []
    real = tqdm.tqdm

    def recording(*args, **kwargs):
        seen.append(kwargs.get("disable"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tqdm, "tqdm", recording)
    fakes.write_jpeg_tar(tmp_path / "cifar10-jpeg" / "cifar10-jpeg.tar.gz", CLASSES, {"train": 1, "test": 1})
    load_dataset("cifar10-jpeg", "train", tmp_path, progress=False)
    load_dataset("cifar10-jpeg", "test", tmp_path)
    assert seen == [True, None]  # off; else tqdm's own rule (a bar on a terminal only)


def test_subset_of_folder_data_keeps_the_evaluation_view(tmp_path):
    """The validation split of an ImageNet training set is a subset: its images must be the
    ones the full set gives (shorter side 256/224 of the size, then the centre crop)."""
    _write_coordinate_images(tmp_path / "imagenet" / "train", 3)
    _write_coordinate_images(tmp_path / "imagenet" / "val", 1)
    data = load_dataset("imagenet", "train", tmp_path, image_size=32)
    index = torch.tensor([2, 0])
    part = subset(data, index)
    assert isinstance(part, FolderImageData) and part.labels.tolist() == data.labels[index].tolist()
    assert torch.equal(part.get_batch(torch.arange(2)), data.get_batch(index))


def test_decode_cache_of_a_folder_notices_an_edited_image_of_the_same_size(tmp_path, fakes):
    """An unpacked source is keyed by every file's size and modification time: an image
    replaced by one of the same byte size is decoded anew."""
    import io

    from PIL import Image

    def png(label):  # uncompressed: the byte size depends on the image size only
        buf = io.BytesIO()
        Image.fromarray(fakes.make_image(label, 0)).save(buf, format="PNG", compress_level=0)
        return buf.getvalue()

    source = tmp_path / "src"
    for name in ("a", "b"):
        (source / "train" / name).mkdir(parents=True)
        (source / "train" / name / "0.png").write_bytes(png(0))
    path = source / "train" / "a" / "0.png"
    first = folder_mod.cached_decode("demo", "train", source, 32)
    edited = png(5)  # another flat colour, as many bytes
    assert len(edited) == path.stat().st_size
    path.write_bytes(edited)
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    again = folder_mod.cached_decode("demo", "train", source, 32)
    assert first.images[0, 0, 0, 0].item() == 10 and again.images[0, 0, 0, 0].item() == 110


def test_evaluation_view_is_torchvisions_resize_and_center_crop():
    """Resize(256) + CenterCrop(224) as torchvision computes it: the longer side truncated (640 x 427
    -> 383 x 256, not the rounded 384) and the crop offsets rounded ((383 - 224) / 2 = 79.5 -> 80)."""
    from PIL import Image

    from nuat.data.imagedata import fit_image

    rng = np.random.default_rng(0)
    for (w, h), (nw, nh), (left, top) in [((640, 427), (383, 256), (80, 16)), ((427, 640), (256, 383), (16, 80)),
                                          ((500, 375), (341, 256), (58, 16)), ((256, 300), (256, 300), (16, 38))]:
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        want = image.resize((nw, nh), Image.BILINEAR).crop((left, top, left + 224, top + 224))
        got = fit_image(image, 224, 256)
        assert np.array_equal(np.asarray(got), np.asarray(want)), (w, h)


def test_decode_errors_name_the_file_also_inside_an_archive(tmp_path, fakes):
    """cifar10-jpeg said 'cannot decode image 33 of cifar10-jpeg train' (a position in the class-
    interleaved order), and from a tar named the file '<_io.BytesIO object at 0x...>'."""
    import tarfile

    fakes.write_image_folder(tmp_path / "a" / "cifar10-jpeg" / "train", CLASSES, 2, fmt="JPEG")
    fakes.write_image_folder(tmp_path / "a" / "cifar10-jpeg" / "test", CLASSES, 1, fmt="JPEG")
    broken = tmp_path / "a" / "cifar10-jpeg" / "train" / CLASSES[1] / "0001.jpg"
    assert broken.exists(), sorted(p.name for p in broken.parent.iterdir())
    broken.write_bytes(b"junk")
    with pytest.raises(DataError, match=f"cannot decode image {broken}: "):
        load_dataset("cifar10-jpeg", "train", tmp_path / "a")
    archive = tmp_path / "b" / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "a" / "cifar10-jpeg", arcname="cifar10-jpeg")
    with pytest.raises(DataError) as info:
        load_dataset("cifar10-jpeg", "train", tmp_path / "b")
    assert f"cannot decode image {archive}:train/{CLASSES[1]}/0001.jpg: " in str(info.value)
    assert "BytesIO" not in str(info.value)


def test_a_decompression_bomb_is_a_data_error_naming_the_file(tmp_path, fakes, monkeypatch):
    """PIL's DecompressionBombError is no OSError: it was a traceback."""
    from PIL import Image

    fakes.write_image_folder(tmp_path / "imagefolder" / "train", ["a", "b"], 2, size=(40, 30))
    fakes.write_image_folder(tmp_path / "imagefolder" / "test", ["a", "b"], 1, size=(40, 30))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 40 x 30 > 2 x 100: PIL refuses it
    with pytest.raises(DataError, match="cannot decode image .*imagefolder/train/a/.*exceeds limit"):
        load_dataset("imagefolder", "train", tmp_path)  # the first image's size probe
    data = load_dataset("imagefolder", "train", tmp_path, image_size=16)
    with pytest.raises(DataError, match="cannot decode image .*imagefolder/train/.*exceeds limit"):
        data.get_batch(torch.tensor([0]))


def test_a_class_list_with_a_byte_order_mark_reads_its_first_class(tmp_path):
    from nuat.data.datasets import read_class_list

    path = tmp_path / "classes.txt"
    path.write_text("n01440764\nn01443537\n", encoding="utf-8-sig")
    assert read_class_list(path) == ["n01440764", "n01443537"]
