"""The language server's static layer table matches torchvision (checked here, where torch may
be imported; the server itself never imports it)."""

from __future__ import annotations

import pytest

from camlang.lsp.layers import LAYERS, architectures

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")


def test_every_architecture_is_a_torchvision_model() -> None:
    known = set(torchvision.models.list_models(module=torchvision.models))
    assert set(architectures()) <= known


@pytest.mark.parametrize(
    "arch",
    [
        "resnet18",
        "resnet50",
        "resnet152",
        "vgg16",
        "densenet121",
        "mobilenet_v3_small",
        "efficientnet_b0",
        "convnext_tiny",
        "squeezenet1_1",
        "shufflenet_v2_x1_0",
        "mnasnet1_0",
        "regnet_y_400mf",
        "googlenet",
        "inception_v3",
        "vit_b_16",
        "swin_t",
        "maxvit_t",
    ],
)
def test_each_offered_layer_resolves(arch: str) -> None:
    from camlang.models.layers import resolve_layer

    # Building on the meta device allocates no weights; the few models that read tensor values
    # while they are built (regnet widths, maxvit positions) are small enough for the CPU.
    device = "cpu" if arch in ("regnet_y_400mf", "maxvit_t") else "meta"
    with torch.device(device):
        kwargs = {"aux_logits": False, "init_weights": False} if arch in ("googlenet", "inception_v3") else {}
        module = torchvision.models.get_model(arch, **kwargs)
    for path in LAYERS[arch]:
        resolve_layer(module, path)  # raises CamlangError on an unknown path
