"""Sufficient fraction: exact on monotone toys, cheap in forward passes, honest on non-monotone ones."""

from __future__ import annotations

import math

import pytest
import torch

from camlang.errors import CamlangError
from camlang.metrics import CallCounter, sufficient_fraction, sufficient_fraction_linear


class SumModel(torch.nn.Module):
    """Class 1 iff the kept intensity exceeds `share` of the full image's: monotone for x >= 0, fill 0."""

    def __init__(self, totals: torch.Tensor, share: float) -> None:
        super().__init__()
        self.totals = totals
        self.share = share
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1).sum(1)
        # the threshold is the smallest full-image total share so one model serves all images
        logit1 = s - self.share * self.totals.min()
        return torch.stack([torch.zeros_like(logit1), logit1], 1)


class WindowModel(torch.nn.Module):
    """Non-monotone: class 1 iff 10..20 pixels are non-zero, or all of them are."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x.flatten(1) != 0).sum(1)
        ok = ((s >= 10) & (s <= 20)) | (s == x[0].numel())
        return torch.stack([torch.zeros(x.shape[0]), ok.float() * 2 - 1], 1)


class LowWindowModel(torch.nn.Module):
    """Non-monotone below the bracket: class 1 iff 20..30 or at least 100 pixels are non-zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x.flatten(1) != 0).sum(1)
        ok = ((s >= 20) & (s <= 30)) | (s >= 100)
        return torch.stack([torch.zeros(x.shape[0]), ok.float() * 2 - 1], 1)


def ref_linear(net, x, L, target, fill=0.0):
    """Keep 1, 2, ... top pixels, one image per model call, until the target class is predicted."""
    _, h, w = x.shape
    flat = L.reshape(-1).tolist()
    order = sorted(range(h * w), key=lambda i: (-flat[i], i))
    img = torch.full_like(x, fill)
    for k, idx in enumerate(order, start=1):
        r, c = divmod(idx, w)
        img[:, r, c] = x[:, r, c]
        with torch.no_grad():
            if int(net(img[None]).argmax(1)) == target:
                return k
    return None


def predicts(net, x, L, target, k, fill=0.0):
    _, h, w = x.shape
    flat = L.reshape(-1).tolist()
    order = sorted(range(h * w), key=lambda i: (-flat[i], i))
    img = torch.full_like(x, fill)
    for idx in order[:k]:
        r, c = divmod(idx, w)
        img[:, r, c] = x[:, r, c]
    with torch.no_grad():
        return int(net(img[None]).argmax(1)) == target


def monotone_case(b=4, h=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 1, h, h, generator=g)
    L = torch.rand(2, b, h, h, generator=g)
    L[1, 0] = torch.round(L[1, 0] * 4) / 4  # ties
    net = SumModel(x.flatten(1).sum(1), 0.4)
    return net, x, L, torch.ones(b, dtype=torch.long)


def test_exact_search_equals_linear_on_monotone_toy() -> None:
    net, x, L, t = monotone_case()
    fast = sufficient_fraction(net, x, L, t, tol=None, chunk_size=16)
    slow = sufficient_fraction_linear(net, x, L, t, chunk_size=16)
    for m in range(2):
        for b in range(4):
            k = ref_linear(net, x[b], L[m, b], 1)
            assert int(fast.pixels[m, b]) == int(slow.pixels[m, b]) == k
            assert abs(float(fast.fraction[m, b]) - k / 256) < 1e-7
    assert fast.monotone_consistent.all() and fast.found.all() and slow.found.all()
    # the linear procedure evaluates exactly one image per count it tries
    assert slow.forward_passes == int(slow.pixels.sum())
    assert slow.forward_passes > 4 * fast.forward_passes  # only 256 pixels here; see the 32x32 test


def test_forward_pass_ratio_32px() -> None:
    net, x, L, t = monotone_case(b=8, h=32, seed=1)
    L = L[0]
    counter = CallCounter()
    fast = sufficient_fraction(net, x, L, t, tol=None, counter=counter)
    slow = sufficient_fraction_linear(net, x, L, t, block=64)
    assert torch.equal(fast.pixels, slow.pixels)
    assert counter.images == fast.forward_passes
    # per image: one per power of two (11) + binary search (< 10) + 3 + 3 check points
    assert fast.forward_passes <= 8 * (11 + 10 + 6)
    assert int(fast.pixels.sum()) / fast.forward_passes > 10


def test_tolerance_grid_on_monotone_toy() -> None:
    net, x, L, t = monotone_case()
    exact = sufficient_fraction(net, x, L, t, tol=None)
    coarse = sufficient_fraction(net, x, L, t, tol=1 / 32)  # grid of 8 pixels
    expected = torch.clamp(torch.ceil(exact.pixels / 8) * 8, max=256).long()
    assert torch.equal(coarse.pixels, expected)
    assert coarse.forward_passes < exact.forward_passes


def test_non_monotone_is_flagged() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 8, 8, generator=g) + 0.1
    L = torch.rand(3, 8, 8, generator=g)
    res = sufficient_fraction(WindowModel(), x, L, torch.ones(3, dtype=torch.long), tol=None)
    lin = sufficient_fraction_linear(WindowModel(), x, L, torch.ones(3, dtype=torch.long))
    assert res.pixels.tolist() == [10, 10, 10] == lin.pixels.tolist()
    assert not res.monotone_consistent.any()
    # 16, 32, 64 lose the class, 128 keeps it: the search brackets 100; the check point 25 keeps it
    x16 = torch.rand(2, 1, 16, 16, generator=g) + 0.1
    L16 = torch.rand(2, 16, 16, generator=g)
    res = sufficient_fraction(LowWindowModel(), x16, L16, torch.ones(2, dtype=torch.long), tol=None)
    lin = sufficient_fraction_linear(LowWindowModel(), x16, L16, torch.ones(2, dtype=torch.long))
    assert res.pixels.tolist() == [100, 100] and lin.pixels.tolist() == [20, 20]
    assert not res.monotone_consistent.any()


def test_random_cnn_local_minimality() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(24, 4),
    ).eval()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, 16, 16, generator=g)
    L = torch.rand(2, 4, 16, 16, generator=g)
    t = net(x).argmax(1)
    res = sufficient_fraction(net, x, L, t, tol=None, fill=0.0)
    assert ((res.fraction > 0) & (res.fraction <= 1)).all()
    for m in range(2):
        for b in range(4):
            k = int(res.pixels[m, b])
            assert res.found[m, b]
            assert predicts(net, x[b], L[m, b], int(t[b]), k)
            if k > 1:
                assert not predicts(net, x[b], L[m, b], int(t[b]), k - 1)
            # the linear scan finds the globally smallest sufficient set; equal when P is monotone
            assert ref_linear(net, x[b], L[m, b], int(t[b])) <= k


def test_unreachable_target_reports_not_found() -> None:
    net, x, L, _ = monotone_case()
    t0 = torch.zeros(4, dtype=torch.long)  # class 0 only when nothing is kept: never
    t0_net = SumModel(x.flatten(1).sum(1), 0.0)
    res = sufficient_fraction(t0_net, x, L[0], t0)
    assert not res.found.any() and (res.fraction == 1).all()
    lin = sufficient_fraction_linear(t0_net, x, L[0], t0, block=32)
    assert not lin.found.any() and (lin.fraction == 1).all()
    assert math.isclose(float(res.fraction[0]), 1.0)
    with pytest.raises(CamlangError, match="tol"):
        sufficient_fraction(net, x, L, t0, tol=0.0)
    with pytest.raises(CamlangError, match="step"):
        sufficient_fraction_linear(net, x, L, t0, step=0)
