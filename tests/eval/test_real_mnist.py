"""GAMA-PGD and PGD-100 break an undefended model on real MNIST (eps 0.3)."""

import torch

from nuat.attacks import gama_pgd, pgd
from nuat.eval.accuracy import batch_correct

N = 200


def test_gama_pgd_and_pgd100_break_an_undefended_mnist_model(undefended_mnist, mnist_test):
    x = mnist_test.images[:N].float() / 255
    y = mnist_test.labels[:N]
    model = undefended_mnist
    clean = batch_correct(model, x, y, None, 0.3).float().mean().item()
    assert clean >= 0.85  # the model works: a broken one would make the test meaningless
    gen = torch.Generator().manual_seed(0)
    attacks = {
        "pgd-100": lambda m, a, b: pgd(m, a, b, eps=0.3, steps=100, step_size=0.01, generator=gen),
        "gama-pgd-100": lambda m, a, b: gama_pgd(m, a, b, eps=0.3, generator=gen),
    }
    for name, attack in attacks.items():
        robust = batch_correct(model, x, y, attack, 0.3).float().mean().item()  # checks the eps-ball too
        assert robust <= 0.02, f"{name} leaves {robust:.1%} of an undefended MNIST model"
