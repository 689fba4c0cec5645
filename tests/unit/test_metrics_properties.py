"""Hypothesis: metric values stay within their documented bounds."""

from __future__ import annotations

import hypothesis.strategies as st
import torch
from hypothesis import given, settings

from camlang.metrics import (
    deletion_auc,
    energy_pointing_game,
    entropy,
    insertion_auc,
    iou_at,
    sparsity,
    sufficient_fraction,
)

FAST = settings(max_examples=25, deadline=None)


def tiny_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 3),
    ).eval()


NET = tiny_cnn()


def inputs(seed: int, b: int, h: int, w: int, ties: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, h, w, generator=g)
    L = torch.rand(2, b, h, w, generator=g)
    if ties:
        L = torch.round(L * 2) / 2
    return x, L


# Few distinct sizes: torch's CPU kernels pay a set-up cost for every new input shape.
shapes = st.tuples(
    st.integers(0, 10_000), st.integers(1, 3), st.sampled_from([3, 8]), st.sampled_from([5, 8]), st.booleans()
)


@FAST
@given(shapes, st.integers(1, 12), st.sampled_from([0.0, "blur", -2.0]))
def test_auc_in_unit_interval(shape, steps, fill) -> None:
    x, L = inputs(*shape)
    t = NET(x).argmax(1)
    for fn in (deletion_auc, insertion_auc):
        res = fn(NET, x, L, t, steps=steps, fill=fill, blur_sigma=1.0)
        assert ((res.auc >= 0) & (res.auc <= 1)).all()
        assert ((res.curve >= 0) & (res.curve <= 1)).all()


@FAST
@given(shapes, st.one_of(st.none(), st.floats(0.01, 1.0)))
def test_sufficient_fraction_in_half_open_unit_interval(shape, tol) -> None:
    x, L = inputs(*shape)
    t = torch.randint(0, 3, (x.shape[0],), generator=torch.Generator().manual_seed(shape[0]))
    res = sufficient_fraction(NET, x, L, t, tol=tol)
    assert ((res.fraction > 0) & (res.fraction <= 1)).all()
    assert (res.pixels >= 1).all() and (res.pixels <= x.shape[-1] * x.shape[-2]).all()


@FAST
@given(shapes, st.floats(0.0, 1.0))
def test_map_statistics_bounds(shape, thr) -> None:
    _, L = inputs(*shape)
    n = L.shape[-1] * L.shape[-2]
    gini = sparsity(L)
    assert ((gini >= 0) & (gini <= 1 - 1 / n + 1e-6)).all()
    h = entropy(L)
    assert ((h >= 0) & (h <= torch.log(torch.tensor(float(n))) + 1e-5)).all()
    masks = L[0] > 0.5
    e = energy_pointing_game(L, masks)
    assert ((e >= 0) & (e <= 1 + 1e-6)).all()
    iou = iou_at(L, masks, thr)
    assert ((iou >= 0) & (iou <= 1)).all()
