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


@pytest.mark.parametrize("arch", ["shapes_cnn", "cifar_resnet20", "cifar_resnet56", "mobilenet_v2_tf"])
def test_builtin_architectures_list_their_named_modules(arch: str) -> None:
    """camlang's own architectures: the small ones list exactly their named modules, and every
    listed path resolves."""
    from camlang.lsp.layers import BUILTIN_LAYERS
    from camlang.models import build_architecture, layer_names, resolve_layer

    with torch.device("meta"):
        module = build_architecture(arch).module
    if arch != "mobilenet_v2_tf":  # hundreds of modules: the table offers its stages
        assert list(BUILTIN_LAYERS[arch]) == layer_names(module)
    for path in BUILTIN_LAYERS[arch]:
        resolve_layer(module, path)


def test_mlp_layers_are_its_sequential_positions() -> None:
    from pathlib import Path

    from camlang.frontend.program import ModelDef
    from camlang.lsp.layers import declared_layers
    from camlang.models import build_mlp, layer_names

    sizes = [5, 6, 6, 2]
    model = ModelDef("m", "mlp", {"sizes": sizes}, None, Path("."))
    assert list(declared_layers(model)) == layer_names(build_mlp(sizes))
