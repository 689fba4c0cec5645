"""Layer names of declared models, for completion inside `at "..."` and after `@"`, without torch.

The server must answer in milliseconds and never import torch, so it cannot build a model to
list its modules. This static table gives, per torchvision architecture family, the top-level
modules and the usual CAM target layers (the paths `camlang.models.layers.resolve_layer`
accepts), and for camlang's own architectures (`shapes_cnn`, the CIFAR ResNets, `mlp`) every
named module. `declared_layers` reads a `model` declaration (its source, `arch`, `sizes` and `at`
layers). `tests/lsp/test_layer_table.py` builds every listed architecture on torch's meta device
and checks each name resolves (and that the built-in lists are exactly the named modules), so the
table cannot silently drift from torchvision or from camlang's models.
"""

from __future__ import annotations

from dataclasses import dataclass

from camlang.frontend.program import ModelDef


@dataclass(frozen=True, slots=True)
class Family:
    """Architectures that share a module layout, and the layer paths worth offering."""

    archs: tuple[str, ...]
    layers: tuple[str, ...]


def _resnet_layers(blocks: tuple[int, int, int, int], convs: int) -> tuple[str, ...]:
    """The stem, each stage, each block and its convolutions (`convs` per block: 2 in a basic
    block, 3 in a bottleneck), `layer4[-1]`, the pooling and the head."""
    stages: list[str] = []
    for i, n in zip(range(1, 5), blocks):
        stages.append(f"layer{i}")
        for b in range(n):
            stages += [f"layer{i}.{b}", *(f"layer{i}.{b}.conv{c}" for c in range(1, convs + 1))]
    return ("conv1", "bn1", "relu", "maxpool", *stages, "layer4[-1]", "avgpool", "fc")


_SEQUENTIAL_HEAD = ("features", "features[-1]", "avgpool", "classifier")

FAMILIES: tuple[Family, ...] = (
    Family(("resnet18",), _resnet_layers((2, 2, 2, 2), 2)),
    Family(("resnet34",), _resnet_layers((3, 4, 6, 3), 2)),
    Family(("resnet50", "resnext50_32x4d", "wide_resnet50_2"), _resnet_layers((3, 4, 6, 3), 3)),
    Family(
        ("resnet101", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2"),
        _resnet_layers((3, 4, 23, 3), 3),
    ),
    Family(("resnet152",), _resnet_layers((3, 8, 36, 3), 3)),
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


def _cifar_resnet_layers(depth: int) -> tuple[str, ...]:
    """Every named module of `cifar_resnet{depth}` (three stages of (depth - 2) / 6 blocks)."""
    parts = ("conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "shortcut")
    stages: list[str] = []
    for i in range(1, 4):
        stages.append(f"layer{i}")
        for b in range((depth - 2) // 6):
            stages += [f"layer{i}.{b}", *(f"layer{i}.{b}.{p}" for p in parts)]
    return ("conv1", "bn1", "relu", *stages, "pool", "linear")


#: camlang's own architectures (`checkpoint(..., arch = NAME)`) -> their layer paths.
BUILTIN_LAYERS: dict[str, tuple[str, ...]] = {
    "shapes_cnn": ("features", *(f"features.{i}" for i in range(7)), "pool", "classifier"),
    **{f"cifar_resnet{d}": _cifar_resnet_layers(d) for d in (20, 32, 44, 56)},
    "mobilenet_v2_tf": (
        "features",
        *(f"features.{i}" for i in range(19)),
        "features[-1]",
        "classifier",
    ),
}


def _mlp_layers(sizes: object) -> tuple[str, ...]:
    """`mlp([...])` is `Sequential(Flatten, Linear, ReLU, ..., Linear)`: modules "0", "1", ..."""
    if not isinstance(sizes, list | tuple) or len(sizes) < 2:
        return ()
    return tuple(str(i) for i in range(2 * len(sizes) - 2))


def declared_layers(model: ModelDef) -> tuple[str, ...]:
    """The layer paths of a declared model that the tables know: its `at` layers first, then its
    architecture's (empty for an architecture they do not know, e.g. an ONNX file)."""
    args = model.args
    arch = args.get("name") if model.kind == "torchvision" else args.get("arch")
    known: tuple[str, ...] = ()
    if model.kind == "mlp":
        known = _mlp_layers(args.get("sizes"))
    elif isinstance(arch, str):
        key = arch.strip().lower()
        known = BUILTIN_LAYERS.get(key) or LAYERS.get(key, ())
    declared = tuple(x for x in (model.layer, *model.more_layers) if x)
    return tuple(dict.fromkeys(declared + known))
