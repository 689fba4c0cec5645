"""Layer paths, suggestions and the default CAM layer."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from camlang.errors import CamlangError
from camlang.models import (
    CifarResNet,
    ShapesCNN,
    build_mlp,
    default_target_layer,
    layer_names,
    layer_path_of,
    resolve_layer,
)


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    return torchvision.models.resnet18(weights=None).eval()


def test_dotted_and_indexed_paths(resnet18: nn.Module) -> None:
    assert resolve_layer(resnet18, "layer4") is resnet18.layer4
    assert resolve_layer(resnet18, "layer4.1") is resnet18.layer4[1]
    assert resolve_layer(resnet18, "layer4[-1]") is resnet18.layer4[1]
    assert resolve_layer(resnet18, "layer4[0].conv1") is resnet18.layer4[0].conv1
    assert resolve_layer(resnet18, " layer3.-1.bn2 ") is resnet18.layer3[1].bn2
    cnn = ShapesCNN()
    assert resolve_layer(cnn, "features.6") is resolve_layer(cnn, "features[-1]") is cnn.features[6]
    assert isinstance(cnn.features[6], nn.ReLU)
    assert layer_path_of(cnn, resolve_layer(cnn, "features[-1]")) == "features.6"
    assert "layer4.1.conv2" in layer_names(resnet18)


def test_wrong_paths_suggest_nearest_names(resnet18: nn.Module) -> None:
    with pytest.raises(CamlangError) as err:
        resolve_layer(resnet18, "layr4")
    assert "layr4" in str(err.value) and "layer4" in (err.value.hint or "")
    with pytest.raises(CamlangError) as err:
        resolve_layer(resnet18, "layer4.5")
    assert "layer4.1" in (err.value.hint or "")
    with pytest.raises(CamlangError, match="malformed"):
        resolve_layer(resnet18, "layer4..1")
    with pytest.raises(CamlangError, match="empty"):
        resolve_layer(resnet18, "")
    with pytest.raises(CamlangError):
        resolve_layer(resnet18, "layer4[7]")


def test_default_target_layer(resnet18: nn.Module) -> None:
    resnet18.train()
    assert default_target_layer(resnet18, torch.zeros(1, 3, 64, 64)) == "layer4.1"
    assert resnet18.training  # flags restored
    resnet18.eval()
    assert default_target_layer(ShapesCNN(), torch.zeros(1, 3, 64, 64)) == "features.6"
    assert default_target_layer(CifarResNet(20), torch.zeros(1, 3, 32, 32)).startswith("layer3.2")
    mobilenet = torchvision.models.mobilenet_v3_small(weights=None)
    assert default_target_layer(mobilenet, torch.zeros(1, 3, 64, 64)) == "features.12"


def test_non_image_model_and_bad_example() -> None:
    with pytest.raises(CamlangError, match="non-image model"):
        default_target_layer(build_mlp([4, 3, 2]), torch.zeros(1, 4))
    with pytest.raises(CamlangError, match="example input"):
        default_target_layer(ShapesCNN(), torch.zeros(1, 5, 64, 64))
