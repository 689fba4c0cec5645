"""Average Drop / Increase in Confidence against per-image loops and pytorch-grad-cam."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from camlang.errors import CamlangError
from camlang.metrics import CallCounter, average_drop, confidence_change, increase_in_confidence


def tiny_cnn() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(96, 5),
    ).eval()


@pytest.fixture(scope="module")
def setup():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 32, 32, generator=g)
    L = torch.rand(3, 4, 32, 32, generator=g)
    net = tiny_cnn()
    return net, x, L, net(x).argmax(1)


def test_matches_loop_reference(setup) -> None:
    net, x, L, t = setup
    counter = CallCounter()
    res = confidence_change(net, x, L, t, chunk_size=5, counter=counter)
    assert res.average_drop.shape == (3, 4) and res.images == counter.images == 4 + 12
    for m in range(3):
        for b in range(4):
            with torch.no_grad():
                p = torch.softmax(net(x[b : b + 1]), -1)[0, t[b]].item()
                e = x[b] * L[m, b][None]
                q = torch.softmax(net(e[None]), -1)[0, t[b]].item()
            assert abs(float(res.p[b]) - p) < 1e-5 and abs(float(res.p_masked[m, b]) - q) < 1e-5
            assert abs(float(res.average_drop[m, b]) - max(0.0, p - q) / p) < 1e-5
            assert bool(res.increase[m, b]) == (q > p)


def test_agrees_with_pytorch_grad_cam(setup) -> None:
    cm = pytest.importorskip(
        "pytorch_grad_cam.metrics.cam_mult_image", reason="pytorch-grad-cam is not installed"
    )
    mt = pytest.importorskip(
        "pytorch_grad_cam.utils.model_targets", reason="pytorch-grad-cam is not installed"
    )
    net, x, L, t = setup
    targets = [mt.ClassifierOutputSoftmaxTarget(int(i)) for i in t]
    drop = cm.DropInConfidence()(x, L[0].numpy(), targets, net)  # relu(p - p_masked), not divided by p
    inc = cm.IncreaseInConfidence()(x, L[0].numpy(), targets, net)
    res = confidence_change(net, x, L[0], t)
    assert np.abs(res.average_drop.numpy() * res.p.numpy() - drop).max() < 1e-5
    assert np.array_equal(res.increase.numpy(), inc > 0)


def test_elementwise_helpers() -> None:
    p = torch.tensor([0.5, 0.2, 0.0])
    q = torch.tensor([0.25, 0.4, 0.1])
    assert torch.allclose(average_drop(p, q), torch.tensor([0.5, 0.0, 0.0]))
    assert increase_in_confidence(p, q).tolist() == [False, True, True]
    with pytest.raises(CamlangError, match="non-negative"):
        average_drop(-p, q)
