"""Vanilla gradient, gradient x input and SmoothGrad against plain autograd."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from camlang.errors import CamlangError
from camlang.methods import gradient_x_input, input_gradient, smoothgrad, vanilla_gradient


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    ).eval()


def reference_gradient(model: nn.Module, image: torch.Tensor, target: int) -> torch.Tensor:
    """One image at a time, the textbook way."""
    xi = image[None].clone().requires_grad_(True)
    model(xi)[0, target].backward()
    assert xi.grad is not None
    return xi.grad[0]


def test_vanilla_gradient_equals_per_image_autograd() -> None:
    model = tiny_cnn()
    x = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([0, 4, 2])
    g = input_gradient(model, x, targets)
    assert g.shape == x.shape
    for b in range(3):
        ref = reference_gradient(model, x[b], int(targets[b]))
        torch.testing.assert_close(g[b], ref, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(vanilla_gradient(model, x, targets)[b], ref.abs().amax(dim=0))
        torch.testing.assert_close(gradient_x_input(model, x, targets)[b], (ref * x[b]).sum(dim=0))


def test_default_target_is_the_predicted_class() -> None:
    model = tiny_cnn()
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    predicted = model(x).argmax(dim=1)
    torch.testing.assert_close(vanilla_gradient(model, x), vanilla_gradient(model, x, predicted))
    other = (predicted + 1) % 5
    assert not torch.allclose(vanilla_gradient(model, x), vanilla_gradient(model, x, other))


def test_smoothgrad_without_noise_is_the_vanilla_gradient() -> None:
    model = tiny_cnn()
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    sg = smoothgrad(model, x, samples=4, noise=0.0, chunk_size=3)
    torch.testing.assert_close(sg, vanilla_gradient(model, x), rtol=1e-5, atol=1e-7)


def test_smoothgrad_of_a_linear_model_is_its_weight_magnitude() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 4)).eval()
    x = torch.randn(2, 3, 6, 6)
    weight = model[1].weight.detach().reshape(4, 3, 6, 6)
    targets = torch.tensor([1, 3])
    sg = smoothgrad(model, x, targets, samples=5, noise=0.5, generator=torch.Generator().manual_seed(0))
    expected = weight[targets].abs().amax(dim=1)
    torch.testing.assert_close(sg, expected, rtol=1e-5, atol=1e-7)


def test_smoothgrad_is_reproducible_and_differs_from_vanilla() -> None:
    model = tiny_cnn()
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    a = smoothgrad(model, x, samples=6, generator=torch.Generator().manual_seed(7), chunk_size=5)
    b = smoothgrad(model, x, samples=6, generator=torch.Generator().manual_seed(7), chunk_size=5)
    c = smoothgrad(model, x, samples=6, generator=torch.Generator().manual_seed(8), chunk_size=5)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a, vanilla_gradient(model, x))
    assert a.shape == (2, 12, 12) and bool((a >= 0).all())


@pytest.mark.parametrize(
    ("x", "targets", "needle"),
    [
        (torch.randn(3, 12, 12), None, "[B, C, H, W]"),
        (torch.zeros(1, 3, 12, 12, dtype=torch.long), None, "floating-point"),
        (torch.randn(2, 3, 12, 12), torch.tensor([0]), "one target per image"),
        (torch.randn(1, 3, 12, 12), torch.tensor([9]), "out of range"),
        (torch.randn(1, 3, 12, 12), torch.tensor([0.5]), "integer class indices"),
    ],
)
def test_bad_input_is_a_user_error(x: torch.Tensor, targets: torch.Tensor | None, needle: str) -> None:
    with pytest.raises(CamlangError, match=None) as info:
        vanilla_gradient(tiny_cnn(), x, targets)
    assert needle in str(info.value)


def test_smoothgrad_rejects_bad_parameters() -> None:
    x = torch.randn(1, 3, 12, 12)
    with pytest.raises(CamlangError, match="samples"):
        smoothgrad(tiny_cnn(), x, samples=0)
    with pytest.raises(CamlangError, match="noise"):
        smoothgrad(tiny_cnn(), x, noise=-1.0)
