"""Stability, max-sensitivity and equivariance against loops, with simple deterministic cam_fns."""

from __future__ import annotations

import pytest
import torch

from camlang.errors import CamlangError
from camlang.metrics import CallCounter, equivariance_flip, equivariance_shift, max_sensitivity, stability


def pointwise_cam(x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Equivariant to flips and shifts (up to the border): sigmoid of the channel mean."""
    return torch.sigmoid(x.mean(1))


def positional_cam(x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Not equivariant: weights pixels by their column index."""
    w = x.shape[-1]
    ramp = torch.linspace(0, 1, w)
    return torch.sigmoid(x.mean(1)) * ramp


@pytest.fixture(scope="module")
def setup():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 3, 12, 10, generator=g), torch.tensor([0, 1, 2])


def test_stability_and_max_sensitivity_match_loops(setup) -> None:
    x, t = setup
    counter = CallCounter()
    got = stability(
        pointwise_cam, x, t, std=0.1, generator=torch.Generator().manual_seed(4), samples=3, counter=counter
    )
    assert counter.images == 3 * 4
    g = torch.Generator().manual_seed(4)
    eps = torch.randn((3, *x.shape), generator=g)
    for b in range(3):
        base = pointwise_cam(x[b : b + 1], t[b : b + 1])[0]
        vals = []
        for s in range(3):
            noisy = pointwise_cam(x[b : b + 1] + 0.1 * eps[s, b : b + 1], t[b : b + 1])[0]
            vals.append(float((noisy - base).abs().mean()))
        assert abs(float(got[b]) - sum(vals) / 3) < 1e-6
    for norm in ("fro", "mean_abs"):
        sens = max_sensitivity(positional_cam, x, t, radius=0.05, samples=4, norm=norm, chunk_size=5)
        g = torch.Generator().manual_seed(0)  # the default generator
        u = torch.rand((4, *x.shape), generator=g)
        for b in range(3):
            base = positional_cam(x[b : b + 1], t[b : b + 1])[0]
            best = 0.0
            for s in range(4):
                d = positional_cam(x[b : b + 1] + 0.05 * (2 * u[s, b : b + 1] - 1), t[b : b + 1])[0] - base
                size = float(d.norm()) if norm == "fro" else float(d.abs().mean())
                best = max(best, size)
            assert abs(float(sens[b]) - best) < 1e-6


def test_equivariance(setup) -> None:
    x, t = setup
    assert torch.allclose(equivariance_flip(pointwise_cam, x, t), torch.ones(3), atol=1e-6)
    assert torch.allclose(equivariance_shift(pointwise_cam, x, t, 2, -3), torch.ones(3), atol=1e-6)
    flip = equivariance_flip(positional_cam, x, t)
    shifted = equivariance_shift(positional_cam, x, t, 2, -3, fill="edge")
    for b in range(3):
        a = positional_cam(x[b : b + 1].flip(-1), t[:1])[0]
        c = positional_cam(x[b : b + 1], t[:1])[0].flip(-1)
        assert abs(float(flip[b]) - (1 - float((a - c).abs().mean()))) < 1e-6
        base = positional_cam(x[b : b + 1], t[:1])[0]
        img = x[b].clone()  # the shifted image, built by loops (edge fill)
        for i in range(12):
            for j in range(10):
                img[:, i, j] = x[b, :, min(max(i + 3, 0), 11), min(max(j - 2, 0), 9)]
        moved = positional_cam(img[None], t[:1])[0]
        total, count = 0.0, 0
        for i in range(12):
            for j in range(10):
                si, sj = i + 3, j - 2
                if 0 <= si < 12 and 0 <= sj < 10:
                    total += abs(float(moved[i, j] - base[si, sj]))
                    count += 1
        assert abs(float(shifted[b]) - (1 - total / count)) < 1e-6
    assert (flip < 1).all()


def test_errors(setup) -> None:
    x, t = setup
    with pytest.raises(CamlangError, match="maps"):
        stability(lambda a, b: a.mean(1)[:, :5], x, t)
    with pytest.raises(CamlangError, match="shift"):
        equivariance_shift(pointwise_cam, x, t, 10, 0)
    with pytest.raises(CamlangError, match="samples"):
        max_sensitivity(pointwise_cam, x, t, samples=0)
