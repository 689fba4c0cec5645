"""Deletion / insertion AUC against a slow per-image, per-pixel reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from camlang.errors import CamlangError
from camlang.metrics import CallCounter, blur, deletion_auc, insertion_auc


def tiny_cnn(seed: int = 0, classes: int = 5) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(96, classes),
    )
    return net.eval()


def ref_curve(net, x, L, target, steps, canvas, insertion):
    """One image, one map: per-step pixel loops, one model call per step."""
    c, h, w = x.shape
    flat = L.reshape(-1).tolist()
    order = sorted(range(h * w), key=lambda i: (-flat[i], i))
    xs, cs = x.numpy(), canvas.numpy()
    curve = []
    for i in range(steps + 1):
        k = (i * h * w) // steps
        img = cs.copy() if insertion else xs.copy()
        for idx in order[:k]:
            r, col = divmod(idx, w)
            img[:, r, col] = xs[:, r, col] if insertion else cs[:, r, col]
        with torch.no_grad():
            p = torch.softmax(net(torch.from_numpy(img)[None]), -1)[0, target].item()
        curve.append(p)
    curve = np.array(curve)
    auc = sum((curve[i] + curve[i + 1]) / 2 for i in range(steps)) / steps
    return auc, curve


@pytest.fixture(scope="module")
def setup():
    g = torch.Generator().manual_seed(0)
    net = tiny_cnn()
    x = torch.randn(4, 3, 32, 32, generator=g)
    L = torch.rand(2, 4, 32, 32, generator=g)
    L[1, 0] = torch.round(L[1, 0] * 3) / 3  # heavy ties
    targets = net(x).argmax(1)
    return net, x, L, targets


@pytest.mark.parametrize("insertion", [False, True])
def test_curves_match_reference(setup, insertion) -> None:
    net, x, L, targets = setup
    steps = 7
    fn = insertion_auc if insertion else deletion_auc
    fill = "blur" if insertion else 0.0
    canvas = blur(x, 5.0) if insertion else torch.zeros_like(x)
    counter = CallCounter()
    res = fn(net, x, L, targets, steps=steps, fill=fill, chunk_size=10, counter=counter)
    assert res.auc.shape == (2, 4) and res.curve.shape == (2, 4, steps + 1)
    for m in range(2):
        for b in range(4):
            auc, curve = ref_curve(net, x[b], L[m, b], int(targets[b]), steps, canvas[b], insertion)
            assert np.abs(res.curve[m, b].numpy() - curve).max() < 1e-5
            assert abs(float(res.auc[m, b]) - auc) < 1e-5
    # endpoints shared across candidates: 2 per image, inner steps per (map, image)
    assert res.images == 2 * 4 + 2 * 4 * (steps - 1) == counter.images
    assert counter.calls == -(-8 // 10) + -(-(2 * 4 * (steps - 1)) // 10)


def test_single_map_shape_and_candidate_consistency(setup) -> None:
    net, x, L, targets = setup
    both = deletion_auc(net, x, L, targets, steps=5, fill="blur")
    one = deletion_auc(net, x, L[1], targets, steps=5, fill="blur")
    assert one.auc.shape == (4,)
    assert torch.allclose(both.auc[1], one.auc, atol=1e-6)


def test_curve_errors(setup) -> None:
    net, x, L, targets = setup
    with pytest.raises(CamlangError, match="steps"):
        deletion_auc(net, x, L, targets, steps=0)
    with pytest.raises(CamlangError, match="fill"):
        deletion_auc(net, x, L, targets, fill="noise")  # type: ignore[arg-type]
    with pytest.raises(CamlangError, match="targets"):
        deletion_auc(net, x, L, targets[:2])
    with pytest.raises(CamlangError, match="outside"):
        deletion_auc(net, x, L, torch.full((4,), 9))
    with pytest.raises(CamlangError, match="chunk_size"):
        deletion_auc(net, x, L, targets, chunk_size=0)
