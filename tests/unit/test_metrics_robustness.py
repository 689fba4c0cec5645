"""Stability, max/avg-sensitivity (Yeh et al. 2019) and equivariance against loops, with simple cam_fns."""

from __future__ import annotations

import pytest
import torch

from camlang.core.per_image_rng import image_generator
from camlang.errors import CamlangError
from camlang.metrics import (
    CallCounter,
    avg_sensitivity,
    equivariance_flip,
    equivariance_shift,
    max_sensitivity,
    stability,
)


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


def test_stability_and_sensitivity_match_loops(setup) -> None:
    """Reference loops over images and draws, with each draw made from its image's own generator."""
    x, t = setup
    indices = [5, 9, 2]
    counter = CallCounter()
    got = stability(pointwise_cam, x, t, std=0.1, seed=4, samples=3, indices=indices, counter=counter)
    assert counter.images == 3 * 4
    for b in range(3):
        base = pointwise_cam(x[b : b + 1], t[b : b + 1])[0]
        vals = []
        for s in range(3):
            eps = torch.randn(x.shape[1:], generator=image_generator(4, indices[b], "noise", s))
            noisy = pointwise_cam(x[b : b + 1] + 0.1 * eps, t[b : b + 1])[0]
            vals.append(float((noisy - base).abs().mean()))
        assert abs(float(got[b]) - sum(vals) / 3) < 1e-6
    for norm in ("fro", "relative", "mean_abs"):
        sens = max_sensitivity(
            positional_cam, x, t, radius=0.05, samples=4, seed=3, norm=norm, indices=indices, chunk_size=5
        )
        avg = avg_sensitivity(
            positional_cam, x, t, radius=0.05, samples=4, seed=3, norm=norm, indices=indices
        )
        for b in range(3):
            base = positional_cam(x[b : b + 1], t[b : b + 1])[0]
            sizes = []
            for s in range(4):
                u = torch.rand(x.shape[1:], generator=image_generator(3, indices[b], "sensitivity", s))
                assert float((0.05 * (2 * u - 1)).abs().max()) <= 0.05  # inside the L-inf ball
                d = positional_cam(x[b : b + 1] + 0.05 * (2 * u - 1), t[b : b + 1])[0] - base
                size = {
                    "fro": float(d.norm()),
                    "relative": float(d.norm() / base.norm()),
                    "mean_abs": float(d.abs().mean()),
                }[norm]
                sizes.append(size)
            assert abs(float(sens[b]) - max(sizes)) < 1e-6
            assert abs(float(avg[b]) - sum(sizes) / 4) < 1e-6
        assert (avg <= sens + 1e-7).all() and (avg < sens).any()


def test_random_metrics_do_not_depend_on_the_batch(setup) -> None:
    """An image's value is the same alone, in its batch, or in any other batch."""
    x, t = setup
    indices = torch.tensor([11, 3, 7])
    runs = {
        "stability": lambda xs, ts, ix: stability(
            pointwise_cam, xs, ts, std=0.2, samples=2, seed=1, indices=ix
        ),
        "max": lambda xs, ts, ix: max_sensitivity(
            positional_cam, xs, ts, radius=0.1, samples=3, seed=1, indices=ix
        ),
        "avg": lambda xs, ts, ix: avg_sensitivity(
            positional_cam, xs, ts, radius=0.1, samples=3, seed=1, indices=ix
        ),
    }
    for name, run in runs.items():
        whole = run(x, t, indices)
        alone = torch.cat([run(x[b : b + 1], t[b : b + 1], indices[b : b + 1]) for b in range(3)])
        order = torch.tensor([2, 0, 1])
        shuffled = run(x[order], t[order], indices[order])
        assert torch.allclose(whole, alone, atol=1e-6), name
        assert torch.allclose(whole[order], shuffled, atol=1e-6), name
        assert not torch.allclose(whole, run(x, t, indices + 100), atol=1e-6), name  # the index is the key


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
