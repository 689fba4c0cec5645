"""Layer names of torchvision architectures, for completion inside `at "..."`, without torch.

The server must answer in milliseconds and never import torch, so it cannot build a model to
list its modules. This static table gives, per architecture family, the top-level modules and
the usual CAM target layers (the paths `camlang.models.layers.resolve_layer` accepts).
`tests/lsp/test_layer_table.py` builds every listed architecture on torch's meta device and
checks each name resolves, so the table cannot silently drift from torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Family:
    """Architectures that share a module layout, and the layer paths worth offering."""

    archs: tuple[str, ...]
    layers: tuple[str, ...]


def _resnet_layers(blocks: tuple[int, int, int, int]) -> tuple[str, ...]:
    stages = tuple(f"layer{i}" for i in range(1, 5))
    last_blocks = tuple(f"layer{i}.{n - 1}" for i, n in zip(range(1, 5), blocks))
    return ("conv1", "bn1", "relu", "maxpool", *stages, *last_blocks, "layer4[-1]", "avgpool", "fc")


_SEQUENTIAL_HEAD = ("features", "features[-1]", "avgpool", "classifier")

FAMILIES: tuple[Family, ...] = (
    Family(("resnet18",), _resnet_layers((2, 2, 2, 2))),
    Family(("resnet34", "resnet50", "resnext50_32x4d", "wide_resnet50_2"), _resnet_layers((3, 4, 6, 3))),
    Family(
        ("resnet101", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2"),
        _resnet_layers((3, 4, 23, 3)),
    ),
    Family(("resnet152",), _resnet_layers((3, 8, 36, 3))),
    Family(
        ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "alexnet"),
        _SEQUENTIAL_HEAD,
    ),
    Family(
        ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")
        + tuple(f"efficientnet_b{i}" for i in range(8))
        + ("efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l")
        + ("convnext_tiny", "convnext_small", "convnext_base", "convnext_large"),
        ("features", "features[-1]", "classifier"),
    ),
    Family(
        ("densenet121", "densenet161", "densenet169", "densenet201"),
        ("features", "features.denseblock4", "features.norm5", "classifier"),
    ),
    Family(("squeezenet1_0", "squeezenet1_1"), ("features", "features[-1]", "classifier")),
    Family(
        ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"),
        ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5", "fc"),
    ),
    Family(("mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"), ("layers", "layers[-1]", "classifier")),
    Family(
        tuple(
            f"regnet_{kind}_{size}"
            for kind, sizes in (
                ("x", ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")),
                ("y", ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf")),
            )
            for size in sizes
        ),
        ("stem", "trunk_output", "trunk_output.block4", "avgpool", "fc"),
    ),
    Family(("googlenet",), ("conv1", "inception4e", "inception5a", "inception5b", "avgpool", "fc")),
    Family(
        ("inception_v3",), ("Conv2d_1a_3x3", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool", "fc")
    ),
    Family(
        ("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"),
        ("conv_proj", "encoder", "encoder.layers[-1]", "encoder.layers[-1].ln_1", "encoder.ln", "heads"),
    ),
    Family(
        ("swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b"),
        ("features", "features[-1]", "norm", "head"),
    ),
    Family(("maxvit_t",), ("stem", "blocks", "blocks[-1]", "classifier")),
)

#: Architecture name -> its layer paths.
LAYERS: dict[str, tuple[str, ...]] = {arch: fam.layers for fam in FAMILIES for arch in fam.archs}


def architectures() -> list[str]:
    """Every torchvision architecture the table knows, sorted."""
    return sorted(LAYERS)


def layers_of(arch: str) -> tuple[str, ...]:
    """The layer paths offered for `arch` (empty when the table does not know it)."""
    return LAYERS.get(arch.strip().lower(), ())
