"""Each check of ``nuat sanity`` on scripted attack results: it PASSes just inside its tolerance and
FLAGs just outside it (a check that can never flag would be a silent failure), and it is fed the
published protocol (PGD-100 x 5 restarts, PGD-100 at eps = 1, the eps sweep capped at 1).

``measure`` (the per-example robust flags of one attack job) and the smoothness numbers are
scripted; the rules in :func:`nuat.eval.sanity.run_checks` turn them into PASS / FLAG."""

from __future__ import annotations

import pytest
import torch

from nuat.eval import sanity
from nuat.eval.sanity import SanityConfig, run_checks
from nuat.eval.surface import Smoothness

N = 1000  # one image is 0.1 point: the tolerances (0.5, 1 and 2 points) lie between whole images
EPS = 0.1
CFG = SanityConfig(eps=EPS, n=N, batch_size=N, square_queries=10, surface_images=4, progress=False)

# an honest model (accuracy in % of the N images); "white" is the PGD-100 run, "x5" its 5-restart run
HONEST = {"clean": 90.0, "fgsm": 50.0, "pgd-10": 46.0, "pgd-20": 45.0, "pgd-50": 44.0, "pgd-100": 44.0,
          "x5": 44.0, "square": 47.0, "unbounded": 0.0,
          "sweep": {0.025: 80.0, 0.05: 70.0, 0.1: 45.0, 0.15: 30.0, 0.2: 20.0, 0.3: 5.0}}


class _Images:
    """N 1x1x1 images and labels: all ``_smoothness`` reads before the (scripted) smoothness numbers."""

    image_shape = (1, 1, 1)

    def __init__(self):
        self.labels = torch.zeros(N, dtype=torch.long)

    def get_batch(self, index):
        return torch.zeros(len(index), 1, 1, 1, dtype=torch.uint8)


def _flags(percent: float, offset: int = 0) -> torch.Tensor:
    """Images offset..offset+k-1 robust, k = percent of N."""
    k = round(percent * N / 100)
    flags = torch.zeros(N, dtype=torch.bool)
    flags[offset:offset + k] = True
    return flags


def _script(monkeypatch, acc: dict, *, white_offset: int = 0, x5_offset: int = 0,
            smooth: tuple[float, float, float] = (0.0, 0.0, 1.5), eps: float = EPS) -> list[dict]:
    """Replace ``measure`` by the accuracies in ``acc`` (dispatching on each job's parameters) and the
    smoothness numbers by ``smooth``; returns the list of the jobs' parameters seen."""
    seen = []

    def measure(model, job, data, cfg, clean, eps, tag=""):
        p = dict(job.params)
        seen.append(p)
        if job.key.startswith("clean"):
            return {"clean": _flags(acc["clean"])}
        if job.key.startswith("fgsm"):
            assert p["eps"] == eps
            return {"fgsm": _flags(acc["fgsm"])}
        if job.key.startswith("square"):
            return {"square": _flags(acc["square"])}
        assert p["attack"] == "pgd" and p["loss"] == "ce" and p["step_size"] == pytest.approx(p["eps"] / 4)
        if p["steps"] == [10, 20, 50, 100]:
            assert p["eps"] == eps and p["restarts"] == 1
            out = {f"pgd-{c}": _flags(acc[f"pgd-{c}"]) for c in (10, 20, 50)}
            return out | {"pgd-100": _flags(acc["pgd-100"], white_offset)}
        if p["steps"] == [100] and p["restarts"] == 5:
            assert p["eps"] == eps
            return {"pgd-100": _flags(acc["x5"], x5_offset)}
        if p["steps"] == [100]:
            assert p["eps"] == 1.0 and p["restarts"] == 1  # the unbounded attack
            return {"pgd-100": _flags(acc["unbounded"])}
        assert p["steps"] == [20] and p["restarts"] == 1
        return {"pgd-20": _flags(acc["sweep"][round(p["eps"], 6)])}

    def smoothness(model, x, y, *, eps, generator, **kw):
        zero, loses, variation = smooth
        return Smoothness(zero, loses, variation, torch.zeros(3), torch.zeros(len(y), 3), torch.zeros(len(y), 3))

    monkeypatch.setattr(sanity, "measure", measure)
    monkeypatch.setattr(sanity, "smoothness", smoothness)
    monkeypatch.setattr(sanity, "surface", lambda *a, **k: (torch.zeros(3), torch.zeros(3, 3)))
    return seen


def _status(monkeypatch, acc=None, **kw) -> dict[str, str]:
    _script(monkeypatch, acc or HONEST, **kw)
    checks, _ = run_checks(None, _Images(), CFG)
    return {c.name.split()[0]: c.status for c in checks}  # iterative, white-box, accuracy, unbounded, more, loss


def _with(**changes):
    return {**HONEST, **changes}


def test_an_honest_model_passes_every_check_and_the_protocol_is_the_published_one(monkeypatch):
    seen = _script(monkeypatch, HONEST)
    checks, extra = run_checks(None, _Images(), CFG)
    assert [c.status for c in checks] == ["PASS"] * 6, checks
    assert extra["accuracy"]["pgd-100x5"] == pytest.approx(0.44) and extra["accuracy"]["square"] == pytest.approx(0.47)
    sweep = sorted(p["eps"] for p in seen if p.get("steps") == [20])
    assert sweep == pytest.approx([0.025, 0.05, 0.1, 0.15, 0.2, 0.3])


@pytest.mark.parametrize("pgd20, status", [(50.4, "PASS"), (50.6, "FLAG"), (52.0, "FLAG")])
def test_iterative_beats_single_step_flags_pgd20_above_fgsm_plus_half_a_point(monkeypatch, pgd20, status):
    acc = _with(**{"pgd-20": pgd20, "pgd-10": 55.0, "pgd-50": 44.0})
    assert _status(monkeypatch, acc)["iterative"] == status


@pytest.mark.parametrize("square, status", [(43.1, "PASS"), (42.9, "FLAG"), (30.0, "FLAG")])
def test_white_box_beats_black_box_flags_square_a_point_below_white_box(monkeypatch, square, status):
    assert _status(monkeypatch, _with(square=square))["white-box"] == status


def test_white_box_is_the_worst_of_one_and_five_restarts_per_image(monkeypatch):
    # PGD-100 leaves images 0..439 and PGD-100 x 5 images 30..469 robust: 44% each, 41% robust to
    # both. Square at 42.5% is within a point of that; PGD-50 (44%) is 3 points above it
    statuses = _status(monkeypatch, _with(square=42.5), x5_offset=30)
    assert statuses["white-box"] == "PASS" and statuses["more"] == "FLAG"


@pytest.mark.parametrize("rise, status", [(0.4, "PASS"), (0.6, "FLAG"), (5.0, "FLAG")])
def test_accuracy_falls_as_eps_grows_flags_a_rise_of_half_a_point(monkeypatch, rise, status):
    sweep = dict(HONEST["sweep"])
    sweep[0.2] = sweep[0.15] + rise
    assert _status(monkeypatch, _with(sweep=sweep))["accuracy"] == status


def test_the_eps_sweep_is_capped_at_one(monkeypatch):
    cfg = SanityConfig(eps=0.4, n=N, batch_size=N, square_queries=10, surface_images=4, progress=False)
    sweep = {0.1: 60.0, 0.2: 50.0, 0.4: 40.0, 0.6: 20.0, 0.8: 10.0, 1.0: 0.0}
    seen = _script(monkeypatch, {**HONEST, "sweep": sweep}, eps=0.4)
    run_checks(None, _Images(), cfg)
    assert sorted(p["eps"] for p in seen if p.get("steps") == [20]) == pytest.approx([0.1, 0.2, 0.4, 0.6, 0.8, 1.0])


@pytest.mark.parametrize("left, status", [(0.9, "PASS"), (1.1, "FLAG"), (30.0, "FLAG")])
def test_unbounded_attack_flags_more_than_one_percent_left(monkeypatch, left, status):
    assert _status(monkeypatch, _with(unbounded=left))["unbounded"] == status


@pytest.mark.parametrize("pgd50, status", [(45.9, "PASS"), (46.1, "FLAG"), (60.0, "FLAG")])
def test_more_steps_flags_pgd50_two_points_above_the_worst_white_box(monkeypatch, pgd50, status):
    acc = _with(**{"pgd-10": 70.0, "pgd-20": 50.0, "pgd-50": pgd50, "square": 47.0})
    assert _status(monkeypatch, acc)["more"] == status


@pytest.mark.parametrize("check, acc", [
    ("iterative", {"pgd-20": 50.5, "pgd-10": 55.0}),  # FGSM 50 + 0.5 points, exactly
    ("white-box", {"square": 43.0}),  # PGD-100 44 - 1 point, exactly
    ("accuracy", {"sweep": {**HONEST["sweep"], 0.2: 30.5}}),  # the accuracy at 0.15 + 0.5 points, exactly
    ("unbounded", {"unbounded": 1.0}),  # 1% left, exactly
    ("more", {"pgd-10": 70.0, "pgd-20": 50.0, "pgd-50": 46.0}),  # the worst white-box 44 + 2 points, exactly
])
def test_a_gap_of_exactly_the_tolerance_passes(monkeypatch, check, acc):
    """The rules said PASS up to and including the tolerance, but compared float32 accuracies: a gap
    of exactly the tolerance fell either side of it by rounding (at n = 500, 300 against 295 images
    flagged where 400 against 395 passed). They now compare image counts exactly."""
    assert _status(monkeypatch, _with(**acc))[check] == "PASS"


@pytest.mark.parametrize("smooth, status", [
    ((0.04, 0.09, 2.9), "PASS"),
    ((0.06, 0.0, 1.0), "FLAG"),   # zero gradients > 5%
    ((0.0, 0.11, 1.0), "FLAG"),   # the best random direction beats sign(gradient) on > 10%
    ((0.0, 0.0, 3.1), "FLAG"),    # median total variation / range > 3
])
def test_loss_smoothness_flags_each_of_its_three_numbers(monkeypatch, smooth, status):
    assert _status(monkeypatch, smooth=smooth)["loss"] == status


def test_one_flagged_check_makes_the_verdict_flag(monkeypatch, tmp_path):
    from nuat.eval.targets import EvalTarget

    _script(monkeypatch, _with(unbounded=20.0))
    monkeypatch.setattr(sanity, "plot_surface", lambda path, *a: path)
    target = EvalTarget("tiny", tmp_path / "tiny.safetensors", "0" * 64, torch.nn.Identity())
    result = sanity.run_sanity(target, _Images(), CFG, tmp_path / "out", dataset="synthetic", eps_text="0.1")
    assert [c["status"] for c in result["checks"]].count("FLAG") == 1
    assert result["verdict"] == "FLAG" and "**FLAG**" in (tmp_path / "out" / "sanity.md").read_text()
