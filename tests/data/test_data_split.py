"""validation_split on small synthetic label vectors."""

from __future__ import annotations

import pytest
import torch

from nuat.data import validation_split
from nuat.errors import UsageError


def test_first_of_each_class_in_data_order():
    labels = torch.tensor([1, 0, 1, 0, 0, 1, 2, 2, 2, 1])
    train, val = validation_split(labels, per_class=2)
    assert val.tolist() == [0, 1, 2, 3, 6, 7]
    assert train.tolist() == [4, 5, 8, 9]
    assert train.dtype == val.dtype == torch.int64
    train0, val0 = validation_split(labels, per_class=0)
    assert train0.tolist() == list(range(10)) and val0.numel() == 0


def test_too_small_class_is_an_error():
    with pytest.raises(UsageError, match="class 2 has only 3 samples") as info:
        validation_split(torch.tensor([0, 1, 2, 2, 2, 0, 1, 0, 1, 1, 0]), per_class=3)
    # the message names the flag, the value and the largest value allowed (the smallest class less one)
    assert str(info.value).startswith("--val-per-class 3 is too large") and str(info.value).endswith("0 to 2")
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match=r"class 0 has only 2 samples.*allowed: 0 to 1$"):
        validation_split(torch.tensor([0, 0, 1, 1, 1, 1]), per_class=2)


def test_first_of_each_class_on_a_long_shuffled_label_vector():
    """1,000 labels (where an unstable sort reorders equal keys): the validation samples are the
    first ``per_class`` occurrences of each class in data-set order, counted one by one."""
    labels = torch.randint(0, 7, (1000,), generator=torch.Generator().manual_seed(0))
    train, val = validation_split(labels, per_class=20)
    seen = [0] * 7
    expected = []
    for i, c in enumerate(labels.tolist()):
        if seen[c] < 20:
            expected.append(i)
        seen[c] += 1
    assert val.tolist() == expected
    assert sorted(train.tolist() + val.tolist()) == list(range(1000))
