"""The open requests of pytorch-grad-cam's users, as camlang answers them (docs/migration.md):
CAMs as torch tensors on the model's device with no numpy round trip (upstream issue #356), and
one target per image in a batch, in the drop-in and in `camlang.CAM`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import camlang
from camlang.compat.grad_cam import GradCAM, ScoreCAM
from camlang.compat.grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
from camlang.errors import CamlangError
from camlang.models import load_demo_model

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return load_demo_model().module.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(3, 3, 64, 64)


@pytest.mark.parametrize("device", DEVICES)
def test_forward_tensor_returns_maps_on_the_model_device(
    model: torch.nn.Module, images: torch.Tensor, device: str
) -> None:
    net = model.to(device)
    cam = GradCAM(model=net, target_layers=[net.features[6]])
    maps = cam.forward_tensor(images.to(device), targets=[ClassifierOutputTarget(1)] * 3)
    assert isinstance(maps, torch.Tensor) and maps.device.type == device and maps.shape == (3, 64, 64)
    as_numpy = cam(images.to(device), targets=[ClassifierOutputTarget(1)] * 3)
    np.testing.assert_allclose(maps.detach().cpu().numpy(), as_numpy, atol=1e-6)
    model.to("cpu")


def test_one_target_per_image_in_the_drop_in(model: torch.nn.Module, images: torch.Tensor) -> None:
    cam = GradCAM(model=model, target_layers=[model.features[6]])
    classes = [0, 2, 3]
    batch = cam(images, targets=[ClassifierOutputTarget(c) for c in classes])
    for i, c in enumerate(classes):  # each map is its own image's target, as if computed alone
        alone = cam(images[i : i + 1], targets=[ClassifierOutputTarget(c)])
        np.testing.assert_allclose(batch[i], alone[0], atol=1e-5)
    mixed = ScoreCAM(model=model, target_layers=[model.features[6]])
    soft = mixed(images, targets=[ClassifierOutputSoftmaxTarget(c) for c in classes])
    assert soft.shape == (3, 64, 64)
    with pytest.raises(CamlangError, match="one target per image"):
        mixed(images, targets=[ClassifierOutputSoftmaxTarget(0)] * 2)


def test_one_target_per_image_in_camlang_cam(model: torch.nn.Module, images: torch.Tensor) -> None:
    cam = camlang.CAM("gradcam", model, model.features[6])
    classes = [0, 2, 3]
    batch = cam(images, targets=classes)
    assert isinstance(batch, torch.Tensor)
    for i, c in enumerate(classes):
        torch.testing.assert_close(batch[i], cam(images[i : i + 1], targets=[c])[0], atol=1e-5, rtol=0)
