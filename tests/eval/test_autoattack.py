"""The ``aa`` / ``aa-v1`` path of nuat eval agrees with calling pyautoattack directly.

To keep the suite fast, Square's query budget is cut to 500 in both paths alike (the package
sets 5000; the budget does not touch the wrapper logic under test).
"""

import json

import pytest
import torch
from torch import nn

from nuat.attacks.autoattack import VERSIONS
from nuat.data import ArrayImageData
from nuat.errors import UsageError
from nuat.eval.evaluate import EvalOptions, evaluate
from nuat.eval.registry import Settings
from nuat.eval.state import text_to_flags
from nuat.eval.targets import EvalTarget, prepare

pyautoattack = pytest.importorskip("pyautoattack")
EPS = 0.03
QUERIES = 500


@pytest.fixture(autouse=True)
def fewer_square_queries(monkeypatch):
    from pyautoattack import autoattack

    class FewQueries(autoattack.SquareAttack):
        n_queries = property(lambda self: QUERIES, lambda self, value: None)

    monkeypatch.setattr(autoattack, "SquareAttack", FewQueries)


def small_problem(n=24):
    torch.manual_seed(0)
    model = prepare(nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10)),
                    torch.device("cpu"))
    images = torch.randint(0, 256, (n, 1, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    x = images.float() / 255
    with torch.no_grad():
        labels = model(x).argmax(1)
    labels[:3] = (labels[:3] + 1) % 10  # a few clean mistakes
    return model, ArrayImageData(images, labels, [str(i) for i in range(10)]), x, labels


@pytest.mark.parametrize("name, version, kwargs", [
    ("aa", "standard", {"version": "standard"}),
    ("aa-v1", "v1", {"version": "custom", "attacks": ["apgd-ce", "apgd-dlr", "fab", "square"]}),
])
def test_aa_path_agrees_with_pyautoattack(tmp_path, name, version, kwargs):
    model, data, x, y = small_problem()
    target = EvalTarget("tiny", tmp_path / "tiny.safetensors", "0" * 64, model)
    options = EvalOptions(attacks=f"clean,{name}", dataset="synthetic", settings=Settings(eps=EPS, pgd_step=EPS / 10),
                          eps_text=str(EPS), batch_size=len(y), seed=0, progress=False)
    result = evaluate(target, options, tmp_path / "out", data=data)
    state = json.loads((tmp_path / "out" / "state.json").read_text())
    ours = text_to_flags(state["jobs"][f"{name}@{len(y)}"]["flags"][name])

    adversary = pyautoattack.AutoAttack(model, eps=EPS, norm="Linf", seed=0, device="cpu", **kwargs)
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=len(y))
    with torch.no_grad():
        theirs = model(x_adv).argmax(1) == y
    assert torch.equal(ours, theirs)
    row = next(r for r in result["attacks"] if r["name"] == name)
    assert row["robust"] == int(theirs.sum()) and 0 < row["robust"] < len(y) - 3  # the attack did something
    assert [c["name"] for c in row["components"]] == list(VERSIONS[version])
    assert adversary.square.n_queries == QUERIES


def test_evaluation_refuses_test_classes_other_than_the_trained_ones(tmp_path):
    from nuat.errors import DataError
    model, data, x, y = small_problem()
    trained = list(data.classes)
    options = EvalOptions(attacks="clean", dataset="synthetic", settings=Settings(eps=EPS, pgd_step=EPS / 10),
                          eps_text=str(EPS), batch_size=len(y), seed=0, progress=False)
    ok = EvalTarget("tiny", tmp_path / "tiny.safetensors", "0" * 64, model, {"classes": trained})
    evaluate(ok, options, tmp_path / "ok", data=data)  # the same classes: fine
    shifted = trained[:1] + trained[2:] + ["zebra"]  # a class missing before the end shifts the labels
    bad = EvalTarget("tiny", tmp_path / "tiny.safetensors", "0" * 64, model, {"classes": shifted})
    with pytest.raises(DataError, match="test classes differ"):
        evaluate(bad, options, tmp_path / "bad", data=data)
    assert not (tmp_path / "bad").exists()


def test_evaluation_refuses_two_different_seeds(tmp_path):
    model, data, x, y = small_problem()
    target = EvalTarget("tiny", tmp_path / "tiny.safetensors", "0" * 64, model)
    options = EvalOptions(attacks="clean,aa", dataset="synthetic", settings=Settings(eps=EPS, pgd_step=EPS / 10, seed=1),
                          eps_text=str(EPS), batch_size=len(y), seed=0, progress=False)
    with pytest.raises(UsageError, match="differ"):
        evaluate(target, options, tmp_path / "out", data=data)
    assert not (tmp_path / "out").exists()


def test_collected_flags_point_to_the_authors_flags_doc():
    """pyautoattack's flags say "See flags_doc.md for details", a file the package does not ship."""
    import logging

    from nuat.attacks.autoattack import FLAGS_DOC_URL, LOGGER_NAME, collect_flags

    with collect_flags() as messages:
        logging.getLogger(LOGGER_NAME).warning("Square found more points. See flags_doc.md for details.")
    assert messages == [f"Square found more points. See {FLAGS_DOC_URL} for details."]
