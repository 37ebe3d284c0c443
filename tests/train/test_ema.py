import torch
from torch import nn

from nuat.train.ema import ModelEMA


def test_ema_matches_hand_computation_including_batchnorm_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = ModelEMA(model, tau=0.9)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    expected = {k: v.clone().double() for k, v in init.items()}
    for step in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.5 * (step + 1))
        model.train()
        model(torch.randn(8, 3))  # moves the BatchNorm running statistics
        ema.update(model)
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                expected[k] = 0.1 * v.double() + 0.9 * expected[k]
            else:
                expected[k] = v.clone()
    for k, v in ema.model.state_dict().items():
        assert torch.allclose(v.double(), expected[k].double(), atol=1e-6), k
    assert not ema.model.training
    assert ema.state_dict()["1.num_batches_tracked"].item() == 3


def test_tau_for_run_keeps_the_published_horizon_fraction():
    from nuat.train.ema import PUBLISHED_STEPS, tau_for_run

    assert tau_for_run(0.9998, PUBLISHED_STEPS) == 0.9998
    short = tau_for_run(0.9998, 3688)
    # horizon 1/(1 - tau) as a fraction of the run is (about) the same
    assert (1 / (1 - short)) / 3688 == __import__("pytest").approx((1 / (1 - 0.9998)) / PUBLISHED_STEPS, rel=0.02)
    assert 0.99 < short < 0.9998


def test_tied_weights_are_averaged_once():
    """state_dict() lists a shared tensor under each name; lerping each name applied tau twice
    (0.81 instead of 0.9 for the tied weight)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    model[1].weight = model[0].weight
    ema = ModelEMA(model, tau=0.9)
    assert ema.model[1].weight is ema.model[0].weight  # deepcopy keeps the tie
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.model[0].weight, start + 0.1, atol=1e-6)
