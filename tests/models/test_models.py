"""Tests of the model zoo: every registered model is built, run and round-tripped."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from nuat.errors import UsageError
from nuat.models import (
    MODELS,
    Normalize,
    NormalizedModel,
    build_from_spec,
    build_model,
    model_names,
    register_model,
)

torch.set_num_threads(2)

# (in_channels, image_size) per model; anything not listed uses (3, 32).
_INPUT = {"mnist-cnn": (1, 28), "small-cnn": (1, 28), "resnet50": (3, 64)}


def _cheap(name: str) -> str:
    """The registered WRNs are tested through the same code at depth 16, width 1."""
    return "wrn-16-1" if name.startswith("wrn-") else name


FAST_NAMES = sorted({_cheap(n) for n in model_names()})
NUM_CLASSES = 7


def _build(name: str, normalization=None) -> nn.Module:
    c, s = _INPUT.get(name, (3, 32))
    return build_model(name, num_classes=NUM_CLASSES, in_channels=c, image_size=s, normalization=normalization)


def _images(name: str, batch: int = 2, seed: int = 0) -> torch.Tensor:
    c, s = _INPUT.get(name, (3, 32))
    return torch.rand(batch, c, s, s, generator=torch.Generator().manual_seed(seed))


def _norm(name: str) -> tuple[list[float], list[float]]:
    c, _ = _INPUT.get(name, (3, 32))
    return [0.4, 0.5, 0.45][:c], [0.2, 0.25, 0.3][:c]


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_contents() -> None:
    assert set(model_names()) >= {"mnist-cnn", "small-cnn", "resnet18", "preact-resnet18", "resnet50", "wrn-28-10", "wrn-34-10"}
    assert model_names() == sorted(MODELS)


@pytest.mark.parametrize("name", FAST_NAMES)
def test_forward_shape_and_input_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = _build(name).train()
    x = _images(name).requires_grad_(True)
    logits = model(x)
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    loss = nn.functional.cross_entropy(logits, torch.tensor([0, 3]))
    (grad,) = torch.autograd.grad(loss, x)
    assert grad.shape == x.shape
    assert torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("name", FAST_NAMES)
def test_normalization_layer_normalises(name: str) -> None:
    torch.manual_seed(0)
    mean, std = _norm(name)
    model = _build(name, normalization=(mean, std)).eval()
    assert isinstance(model, NormalizedModel)
    assert isinstance(model.normalize, Normalize)
    sd = model.state_dict()
    assert torch.equal(sd["normalize.mean"].flatten(), torch.tensor(mean))
    assert torch.equal(sd["normalize.std"].flatten(), torch.tensor(std))

    bare = _build(name).eval()
    assert not isinstance(bare, NormalizedModel)
    bare.load_state_dict(model.net.state_dict())
    x = _images(name)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    with torch.no_grad():
        expected = bare((x - m) / s)
        got = model(x)
        unnormalised = bare(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, unnormalised, atol=1e-3)


@pytest.mark.parametrize("name", FAST_NAMES)
@pytest.mark.parametrize("normalized", [False, True], ids=["bare", "normalized"])
def test_spec_round_trip_reproduces_outputs(name: str, normalized: bool) -> None:
    torch.manual_seed(0)
    model = _build(name, normalization=_norm(name) if normalized else None).eval()
    spec = json.loads(json.dumps(model.model_spec))  # as a checkpoint would store it
    c, s = _INPUT.get(name, (3, 32))
    assert spec["name"] == name and spec["num_classes"] == NUM_CLASSES
    assert spec["in_channels"] == c and spec["image_size"] == s
    if normalized:
        mean, std = _norm(name)
        assert spec["normalization"] == {"mean": mean, "std": std}
    else:
        assert spec["normalization"] is None

    torch.manual_seed(1)  # different fresh weights
    rebuilt = build_from_spec(spec).eval()
    assert rebuilt.model_spec == model.model_spec
    rebuilt.load_state_dict(model.state_dict())  # strict: same keys and shapes
    x = _images(name)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    assert build_model(**spec).model_spec == spec


def test_normalize_buffers_move_and_persist() -> None:
    layer = Normalize([0.5, 0.25], [0.5, 2.0])
    assert set(dict(layer.named_buffers())) == {"mean", "std"}
    assert set(layer.state_dict()) == {"mean", "std"}
    assert list(layer.parameters()) == []
    x = torch.ones(1, 2, 3, 3)
    out = layer(x)
    assert out.shape == x.shape
    assert torch.allclose(out[0, 0], torch.full((3, 3), 1.0))
    assert torch.allclose(out[0, 1], torch.full((3, 3), 0.375))
    assert layer.to(torch.float64).mean.dtype == torch.float64


def test_unknown_name_suggests() -> None:
    with pytest.raises(UsageError) as info:
        build_model("resnet19", num_classes=10, in_channels=3, image_size=32)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("unknown model 'resnet19'; choose one of: ")
    assert "did you mean 'resnet18'?" in msg
    for name in model_names():
        assert name in msg
    assert "wrn-D-W (depth D, width W, e.g. wrn-34-10)" in msg  # a pattern, said to be one
    with pytest.raises(UsageError, match="unknown model 'zzzz'; choose one of: ") as info:
        build_model("zzzz", num_classes=10, in_channels=3, image_size=32)
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize("bad", ["wrn-33-10", "wrn-4-1", "wrn-28-0"])
def test_bad_wrn_names(bad: str) -> None:
    with pytest.raises(UsageError, match=bad):
        build_model(bad, num_classes=10, in_channels=3, image_size=32)


def test_wrn_family_parses_any_depth_and_width() -> None:
    model = build_model("wrn-22-3", num_classes=5, in_channels=1, image_size=16)
    assert model.model_spec["name"] == "wrn-22-3"
    assert [len(g) for g in (model.block1, model.block2, model.block3)] == [3, 3, 3]
    assert model.block1[0].conv1.out_channels == 48 and model.fc.in_features == 192
    assert model.conv1.in_channels == 1 and model.conv1.out_channels == 16
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 5)


def test_wrn_34_10_parameter_count_and_init() -> None:
    torch.manual_seed(0)
    model = build_model("wrn-34-10", num_classes=10, in_channels=3, image_size=32)
    assert _count(model) == 46_160_474  # 46.16M
    assert [len(g) for g in (model.block1, model.block2, model.block3)] == [5, 5, 5]
    assert model.fc.in_features == 640
    assert torch.count_nonzero(model.fc.bias) == 0
    bn = model.block2[0].bn1
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    conv = model.block3[1].conv1  # 640 -> 640, 3x3: kaiming fan_out std = sqrt(2 / (9 * 640))
    assert abs(conv.weight.std().item() - (2 / (9 * 640)) ** 0.5) < 1e-3
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_registered_wrn_architectures() -> None:
    model = build_model("wrn-28-10", num_classes=10, in_channels=3, image_size=32)
    assert [len(g) for g in (model.block1, model.block2, model.block3)] == [4, 4, 4]
    assert _count(model) == 36_479_194  # 36.48M


def test_resnet_parameter_counts() -> None:
    assert _count(build_model("resnet18", num_classes=10, in_channels=3, image_size=32)) == 11_173_962
    assert _count(build_model("preact-resnet18", num_classes=10, in_channels=3, image_size=32)) == 11_172_170
    r50 = build_model("resnet50", num_classes=1000, in_channels=3, image_size=224)
    assert _count(r50) == 25_557_032
    assert r50.conv1.kernel_size == (7, 7) and r50.conv1.stride == (2, 2)
    assert isinstance(r50.maxpool, nn.MaxPool2d)
    assert [len(s) for s in (r50.layer1, r50.layer2, r50.layer3, r50.layer4)] == [3, 4, 6, 3]
    r18 = build_model("resnet18", num_classes=10, in_channels=3, image_size=32)
    assert r18.conv1.kernel_size == (3, 3) and r18.conv1.stride == (1, 1)
    assert isinstance(r18.maxpool, nn.Identity)


#: sha256 of "key:shape;..." over the state dict of resnet18 (10 classes, 3 channels, 32 px) as it
#: was before the stem rule: 32-px models (CIFAR checkpoints) must keep exactly these tensors
R18_32PX_STATE = (122, "55eb8b276062d7e16e235b6c2f3da9dfcbd3229af53b206f2b88d124813d9505", 11_183_582)


def test_resnet18_stem_follows_image_size() -> None:
    import hashlib

    r32 = build_model("resnet18", num_classes=10, in_channels=3, image_size=32)
    state = r32.state_dict()
    text = ";".join(f"{k}:{tuple(v.shape)}" for k, v in state.items())
    assert (len(state), hashlib.sha256(text.encode()).hexdigest(), sum(v.numel() for v in state.values())) == \
        R18_32PX_STATE
    assert r32.conv1.kernel_size == (3, 3) and isinstance(r32.maxpool, nn.Identity)
    assert not build_model("resnet18", num_classes=10, in_channels=3, image_size=63).conv1.kernel_size == (7, 7)
    r224 = build_model("resnet18", num_classes=100, in_channels=3, image_size=224).eval()
    assert r224.conv1.kernel_size == (7, 7) and r224.conv1.stride == (2, 2) and r224.conv1.padding == (3, 3)
    assert isinstance(r224.maxpool, nn.MaxPool2d) and r224.maxpool.kernel_size == 3 and r224.maxpool.stride == 2
    assert _count(r224) == 11_227_812  # torchvision's resnet18 with a 100-class head
    assert _count(build_model("resnet18", num_classes=1000, in_channels=3, image_size=224)) == 11_689_512
    assert build_model("resnet18", num_classes=10, in_channels=3, image_size=64).conv1.kernel_size == (7, 7)
    # the stages run at 1/4 of the input: 56x56 at 224 px, 7x7 in the last stage
    sizes = {}
    hooks = [getattr(r224, n).register_forward_hook(lambda m, i, o, n=n: sizes.__setitem__(n, tuple(o.shape[1:])))
             for n in ("layer1", "layer4")]
    with torch.no_grad():
        assert r224(torch.rand(1, 3, 224, 224)).shape == (1, 100)
    for h in hooks:
        h.remove()
    assert sizes == {"layer1": (64, 56, 56), "layer4": (512, 7, 7)}
    # the spec records image_size, so a rebuilt model has the same stem and loads the weights
    rebuilt = build_from_spec(json.loads(json.dumps(r224.model_spec)))
    assert rebuilt.conv1.kernel_size == (7, 7)
    rebuilt.load_state_dict(r224.state_dict())


def test_resnet50_small_images() -> None:
    model = build_model("resnet50", num_classes=10, in_channels=3, image_size=32).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def _layer_summary(model: nn.Module) -> list[tuple]:
    out: list[tuple] = []
    for layer in model:
        if isinstance(layer, nn.Conv2d):
            out.append(("conv", layer.in_channels, layer.out_channels, layer.kernel_size[0], layer.stride[0], layer.padding[0]))
        elif isinstance(layer, nn.Linear):
            out.append(("fc", layer.in_features, layer.out_features))
        elif isinstance(layer, nn.MaxPool2d):
            out.append(("maxpool", layer.kernel_size))
        else:
            out.append((type(layer).__name__,))
    return out


def test_small_cnn_layers() -> None:
    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
    assert _layer_summary(model) == [
        ("conv", 1, 16, 4, 2, 1), ("ReLU",),
        ("conv", 16, 32, 4, 2, 1), ("ReLU",),
        ("Flatten",),
        ("fc", 32 * 7 * 7, 100), ("ReLU",),
        ("fc", 100, 10),
    ]


def test_mnist_cnn_layers() -> None:
    model = build_model("mnist-cnn", num_classes=10, in_channels=1, image_size=28)
    assert _layer_summary(model) == [
        ("conv", 1, 32, 5, 1, 2), ("ReLU",),
        ("conv", 32, 32, 5, 1, 2), ("ReLU",),
        ("maxpool", 2),
        ("conv", 32, 64, 5, 1, 2), ("ReLU",),
        ("conv", 64, 64, 5, 1, 2), ("ReLU",),
        ("maxpool", 2),
        ("Flatten",),
        ("fc", 64 * 7 * 7, 512), ("ReLU",),
        ("fc", 512, 10),
    ]


@pytest.mark.parametrize("name", ["mnist-cnn", "small-cnn"])
@pytest.mark.parametrize("in_channels,image_size", [(3, 32), (1, 30), (3, 5)])
def test_mnist_nets_any_input_size(name: str, in_channels: int, image_size: int) -> None:
    model = build_model(name, num_classes=4, in_channels=in_channels, image_size=image_size)
    assert model(torch.rand(2, in_channels, image_size, image_size)).shape == (2, 4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_classes": 0}, "num_classes"),
        ({"in_channels": -1}, "in_channels"),
        ({"image_size": 2.5}, "image_size"),
        ({"normalization": ([0.5, 0.5], [0.2, 0.2, 0.2])}, "mean has 2 values"),
        ({"normalization": ([0.5] * 3, [0.2, 0.0, 0.2])}, "positive"),
        ({"normalization": {"mean": [0.5] * 3}}, "'mean' and 'std'"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"num_classes": 10, "in_channels": 3, "image_size": 32} | kwargs
    with pytest.raises(UsageError, match=match):
        build_model("small-cnn", **args)


def test_build_from_spec_rejects_bad_specs() -> None:
    with pytest.raises(UsageError, match="missing"):
        build_from_spec({"name": "small-cnn", "num_classes": 10})
    with pytest.raises(UsageError, match="unexpected"):
        build_from_spec({"name": "small-cnn", "num_classes": 10, "in_channels": 1, "image_size": 28, "depth": 3})
    with pytest.raises(UsageError, match="unknown model"):
        build_from_spec({"name": "nope", "num_classes": 10, "in_channels": 1, "image_size": 28})


def test_register_model_adds_and_rejects_duplicates() -> None:
    @register_model("test-linear")
    def _linear(*, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, num_classes))

    try:
        assert "test-linear" in model_names()
        model = build_model("test-linear", num_classes=3, in_channels=1, image_size=4)
        assert model(torch.rand(2, 1, 4, 4)).shape == (2, 3)
        with pytest.raises(ValueError, match="twice"):
            register_model("test-linear")(_linear)
    finally:
        del MODELS["test-linear"]


@pytest.mark.parametrize("name, block", [("preact-resnet18", "layer2"), ("wrn-16-2", "block2")])
def test_projection_shortcut_takes_the_pre_activated_input(name: str, block: str) -> None:
    """Pre-activation blocks: BN-ReLU first, and a projection shortcut (width or stride change)
    reads that pre-activated input. With BN1 sending everything below zero (ReLU -> 0), the
    block's output is exactly zero; a shortcut on the raw input would pass it through."""
    model = build_model(name, num_classes=10, in_channels=3, image_size=32).eval()
    first = getattr(model, block)[0]
    assert first.shortcut is not None
    with torch.no_grad():
        first.bn1.weight.zero_()
        first.bn1.bias.fill_(-1.0)
        out = first(torch.rand(2, first.bn1.num_features, 16, 16) + 0.5)
    assert out.abs().max() == 0


@pytest.mark.parametrize("name, stages, sizes", [
    ("preact-resnet18", ("layer1", "layer2", "layer3", "layer4"), (32, 16, 8, 4)),
    ("wrn-16-1", ("block1", "block2", "block3"), (32, 16, 8)),
])
def test_stage_resolutions_and_final_bn_relu(name: str, stages: tuple, sizes: tuple) -> None:
    """CIFAR-style stages at 32 px: full resolution first, then halved per stage; the pooled
    features come after the final BN-ReLU (non-negative)."""
    model = build_model(name, num_classes=10, in_channels=3, image_size=32).eval()
    seen = {}
    hooks = [getattr(model, n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.shape[-1]))
             for n in stages]
    hooks.append(model.avgpool.register_forward_hook(lambda m, i, o: seen.__setitem__("pool_in_min", i[0].min())))
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert tuple(seen[n] for n in stages) == sizes
    assert seen["pool_in_min"] >= 0


def test_resnet_blocks_end_with_relu_after_the_sum() -> None:
    """ResNet (v1) blocks add the shortcut, then apply ReLU: every block output is >= 0."""
    outputs = []
    for name, size in (("resnet18", 32), ("resnet50", 64)):
        model = build_model(name, num_classes=10, in_channels=3, image_size=size).eval()
        for stage in (model.layer1, model.layer2):
            stage[0].register_forward_hook(lambda m, i, o: outputs.append(o.min()))
        with torch.no_grad():
            model(torch.rand(1, 3, size, size) * 4 - 2)
    assert len(outputs) == 4 and min(outputs) >= 0


def test_resnet50_downsamples_in_the_3x3_conv() -> None:
    """ResNet v1.5: a downsampling Bottleneck strides its 3x3 conv, not the first 1x1 (which
    would skip 3 of every 4 input positions, as the strided 1x1 shortcut does): the block's
    output depends on its input at odd rows and columns too."""
    model = build_model("resnet50", num_classes=10, in_channels=3, image_size=64).eval()
    blocks = [stage[0] for stage in (model.layer2, model.layer3, model.layer4)]
    inputs = []
    hooks = [b.register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach())) for b in blocks]
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    for block, x in zip(blocks, inputs):
        x = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(block(x).sum(), x)
        assert grad[..., 1::2, 1::2].abs().sum() > 0


def test_normalize_refuses_a_zero_or_negative_std() -> None:
    for std in ([0.5, 0.0], [0.5, -0.1]):
        with pytest.raises(ValueError, match="std must be positive"):
            Normalize([0.5, 0.5], std)
