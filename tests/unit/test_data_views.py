"""limit / shuffle / split / get on dataset views."""

from __future__ import annotations

import pytest
import torch

from camlang.data import synthetic_shapes
from camlang.errors import CamlangError


def test_limit_shuffle_split_keep_original_indices() -> None:
    ds = synthetic_shapes(20, size=32, seed=1)
    assert len(ds.limit(5)) == 5 and len(ds.limit(100)) == 20
    sh = ds.shuffle(3)
    order = sh.get(range(20)).indices
    assert sorted(order.tolist()) == list(range(20)) and order.tolist() != list(range(20))
    assert torch.equal(sh.shuffle(3).get(range(20)).indices, ds.shuffle(3).shuffle(3).get(range(20)).indices)
    assert torch.equal(order, ds.shuffle(3).get(range(20)).indices)  # same seed, same order
    # a view's images are the original images, found by index
    first = sh.get([0])
    assert torch.equal(first.raw, ds.get(first.indices).raw)
    train, hold = ds.split(0.75, seed=0)
    a, b = train.get(range(len(train))).indices, hold.get(range(len(hold))).indices
    assert len(train) == 15 and len(hold) == 5
    assert set(a.tolist()).isdisjoint(b.tolist()) and len(set(a.tolist()) | set(b.tolist())) == 20
    assert len(ds) == 20  # views never change the parent


def test_get_negative_and_out_of_range() -> None:
    ds = synthetic_shapes(6, size=32).limit(4)
    assert ds.get([-1]).indices.tolist() == [3]
    with pytest.raises(CamlangError, match="out of range"):
        ds.get([4])
    with pytest.raises(CamlangError):
        ds.split(1.0, seed=0)
    with pytest.raises(CamlangError, match="empty"):
        synthetic_shapes(1).split(0.5, seed=0)
    with pytest.raises(CamlangError):
        list(ds.batches(0))
