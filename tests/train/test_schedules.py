import pytest

from nuat.methods import METHODS
from nuat.train.schedules import cyclic_step_lr, lambda_ramp, step_lr


def test_lambda_ramp_published_nuat_values():
    # NuAT, E = 100, lam_max 4.5: +4.5/90 per epoch for the first 90 epochs
    ramp = lambda e: lambda_ramp(e, 100, lam_max=4.5, ramp_fraction=0.9)  # noqa: E731
    assert ramp(0) == 0.0
    assert ramp(1) == pytest.approx(4.5 / 90)
    assert ramp(45) == pytest.approx(2.25)
    assert ramp(90) == pytest.approx(4.5)
    assert ramp(99) == pytest.approx(4.5)


def test_lambda_ramp_published_nuat_wa_values():
    ramp = lambda e: lambda_ramp(e, 100, lam_max=4.0, ramp_fraction=1.0)  # noqa: E731
    assert ramp(25) == pytest.approx(1.0)
    assert ramp(99) == pytest.approx(3.96)


def test_lambda_ramp_keeps_shape_for_short_runs():
    values = [lambda_ramp(e, 5, lam_max=4.5, ramp_fraction=0.9) for e in range(5)]
    assert values == sorted(values) and values[0] == 0.0
    assert all(0 <= v <= 4.5 for v in values) and values[-1] > 3.5


def test_cyclic_step_lr_published_nuat_resnet18():
    # E = 100: up over 40 epochs to 0.1, down to 0 by epoch 90, step tail after
    lr = lambda epoch: cyclic_step_lr(epoch / 100, lr_max=0.1, up_fraction=0.4, down_fraction=0.5)  # noqa: E731
    assert lr(0) == 0.0
    assert lr(20) == pytest.approx(0.05)
    assert lr(40) == pytest.approx(0.1)
    assert lr(65) == pytest.approx(0.05)
    assert lr(89.999) == pytest.approx(0.0, abs=1e-5)
    assert lr(92) == pytest.approx(0.01)
    assert lr(97) == pytest.approx(0.001)


def test_cyclic_lr_nuat_wa_has_no_tail():
    lr = lambda epoch: cyclic_step_lr(epoch / 100, lr_max=0.1, up_fraction=0.25, down_fraction=0.75)  # noqa: E731
    assert lr(25) == pytest.approx(0.1)
    assert lr(62.5) == pytest.approx(0.05)
    assert lr(100) == 0.0


def test_gat_lambda_is_multiplied_by_four_after_epoch_85_of_100():
    # the authors' GAT_cifar10.py: l2_reg = 10, then l2_reg *= mul (4) at the end of epoch 85
    boost = METHODS["gat"].defaults.lam_boost
    lams = [lambda_ramp(e, 100, lam_max=10.0, ramp_fraction=0.0, boost=boost) for e in range(100)]
    assert lams[:86] == [10.0] * 86 and lams[86:] == [40.0] * 14
    short = [lambda_ramp(e, 8, lam_max=10.0, ramp_fraction=0.0, boost=boost) for e in range(8)]
    assert short == [10.0] * 7 + [40.0]
    assert all(METHODS[m].defaults.lam_boost is None for m in METHODS if not m.startswith("gat"))


def test_gat_lr_is_divided_by_ten_after_epochs_70_and_85_of_100():
    # the authors' GAT_cifar10.py: LR 0.1; LR /= 10 at the end of epochs 70 and 85 (counted from 0)
    drops = METHODS["gat"].defaults.lr_drops
    lrs = [step_lr(e, 100, lr_max=0.1, drops=drops) for e in range(100)]
    assert lrs[:71] == [0.1] * 71
    assert lrs[71:86] == pytest.approx([0.01] * 15) and lrs[86:] == pytest.approx([0.001] * 14)
    # a short run keeps the fractions: 8 epochs drop from epoch 6 (5.68) and 7 (6.88), with the lambda boost
    assert [step_lr(e, 8, lr_max=1.0, drops=drops) for e in range(8)] == pytest.approx([1.0] * 6 + [0.1, 0.01])
    assert step_lr(3, 8, lr_max=0.05, drops=()) == 0.05
    assert all(not METHODS[m].defaults.lr_drops for m in METHODS if not m.startswith("gat"))


def test_method_defaults_are_the_published_ones():
    assert METHODS["nuat"].defaults.lam_max == 4.5 and METHODS["nuat"].defaults.ramp_fraction == 0.9
    assert METHODS["nuat-wa"].defaults.lam_max == 4.0 and METHODS["nuat-wa"].defaults.averages == {"ema": 0.9998}
    assert METHODS["nuat2-wa"].defaults.averages == {"ema": 0.9998, "fast": 0.99}
    assert METHODS["nuat2"].defaults.lr_up == pytest.approx(20 / 55)
    # reference details: +lam_max / (E - 10) for the first E - 10 epochs; NuAT2's published E = 55
    d = METHODS["nuat2"].defaults
    ramp = [lambda_ramp(e, 55, lam_max=d.lam_max, ramp_fraction=d.ramp_fraction) for e in range(55)]
    assert ramp[:46] == pytest.approx([4.0 * e / 45 for e in range(46)]) and ramp[45:] == [4.0] * 10


def test_epoch_line_says_n_a_for_a_pass_the_method_does_not_make():
    from nuat.train.loop import format_epoch

    record = {"epoch": 1, "loss": 0.5, "train_clean_acc": float("nan"), "train_adv_acc": 0.736,
              "val_clean_acc": 0.845, "val_ifgsm7_acc": 0.772, "lr": 0.01, "lambda": 0.0, "seconds": 2.0,
              "images_per_s": 100.0}
    line = format_epoch(record)
    assert "clean n/a  adv 73.6%  val clean 84.5%" in line and "nan" not in line


def test_reached_is_at_or_past_the_fraction_despite_float_rounding():
    from nuat.train.schedules import reached
    # 0.07 * 100 is 7.000000000000001 and 0.29 * 100 is 28.999999999999996 in floating point
    assert 0.07 * 100 > 7 and reached(7, 100, 0.07) and not reached(6, 100, 0.07)
    assert reached(29, 100, 0.29) and not reached(28, 100, 0.29)
    assert reached(0, 10, 0.0)  # a drop at fraction 0 applies from the first epoch
    assert [step_lr(e, 100, lr_max=1.0, drops=(0.07,)) for e in range(5, 10)] == pytest.approx([1.0] * 2 + [0.1] * 3)
    boosted = [lambda_ramp(e, 100, lam_max=1.0, ramp_fraction=0.0, boost=(0.07, 4.0)) for e in (6, 7)]
    assert boosted == [1.0, 4.0]
