"""The architecture registry: every name `checkpoint(..., arch = NAME)` accepts, built fresh.

Names: `shapes_cnn`, `mnist_cnn`, `cifar_resnet20/32/44/56`, `mobilenet_v2_tf`, `mlp([sizes])` and the
torchvision classification models. Weights are loaded separately (`camlang.models.state_dict`).
"""

from __future__ import annotations

import difflib

from camlang.data.base import NORMALIZATION_PRESETS
from camlang.data.shapes import SHAPE_CLASSES
from camlang.errors import CamlangError
from camlang.models.cifar_resnet import CIFAR10_CLASSES, CIFAR_RESNET_DEPTHS, CifarResNet
from camlang.models.demo import ShapesCNN
from camlang.models.loaded import LoadedModel
from camlang.models.mlp import build_mlp, parse_mlp_arch
from camlang.models.mnist_cnn import MNIST_CLASSES, mnist_cnn
from camlang.models.mobilenet_tf import mobilenet_v2_tf
from camlang.models.torchvision_loader import build_torchvision, torchvision_info, torchvision_names


def architecture_names() -> list[str]:
    """Every architecture name `load_checkpoint` accepts (besides `mlp([...])`)."""
    cifar = [f"cifar_resnet{d}" for d in CIFAR_RESNET_DEPTHS]
    return ["shapes_cnn", "mnist_cnn", *cifar, "mobilenet_v2_tf", *torchvision_names()]


def build_architecture(arch: str, num_classes: int | None = None) -> LoadedModel:
    """A freshly initialised model for `arch`, with its metadata (weights not loaded)."""
    key = arch.strip()
    sizes = parse_mlp_arch(key)
    if sizes is not None:
        if num_classes is not None and num_classes != sizes[-1]:
            raise CamlangError(f"{arch!r} has {sizes[-1]} outputs but num_classes is {num_classes}")
        return LoadedModel(build_mlp(sizes), "mlp", f"mlp({sizes})", None, None, sizes[-1], None)
    lower = key.lower()
    if lower == "shapes_cnn":
        n = num_classes or len(SHAPE_CLASSES)
        names = list(SHAPE_CLASSES) if n == len(SHAPE_CLASSES) else None
        return LoadedModel(ShapesCNN(n), "shapes_cnn", "shapes_cnn", 64, None, n, names)
    if lower == "mnist_cnn":
        n = num_classes or 10
        names = MNIST_CLASSES if n == 10 else None
        return LoadedModel(mnist_cnn(n), "mnist_cnn", "mnist_cnn", 28, None, n, names)
    if lower.startswith("cifar_resnet") and lower.removeprefix("cifar_resnet").isdigit():
        depth = int(lower.removeprefix("cifar_resnet"))
        if depth not in CIFAR_RESNET_DEPTHS:
            raise CamlangError(
                f"unknown CIFAR ResNet depth {depth} in {arch!r}",
                hint="use one of " + ", ".join(f"cifar_resnet{d}" for d in CIFAR_RESNET_DEPTHS),
            )
        n = num_classes or 10
        names = CIFAR10_CLASSES if n == 10 else None
        norm = NORMALIZATION_PRESETS["imagenet"]
        return LoadedModel(CifarResNet(depth, n), lower, lower, 32, norm, n, names)
    if lower == "mobilenet_v2_tf":  # TF "SAME" padding, for weights converted from TF/TFLite
        _, _, categories = torchvision_info("mobilenet_v2")
        n = num_classes or 1000
        names = categories if categories is not None and n == len(categories) else None
        half = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        return LoadedModel(mobilenet_v2_tf(n), lower, "MobileNetV2 (TF SAME padding)", 224, half, n, names)
    if lower in torchvision_names():
        input_size, norm, categories = torchvision_info(lower)
        n = num_classes or 1000
        names = categories if categories is not None and n == len(categories) else None
        return LoadedModel(
            build_torchvision(lower, n), lower, f"torchvision {lower}", input_size, norm, n, names
        )
    close = difflib.get_close_matches(lower, architecture_names(), n=4, cutoff=0.5)
    raise CamlangError(
        f"unknown architecture {arch!r}",
        hint=(f"did you mean {', '.join(close)}? " if close else "")
        + "architectures: shapes_cnn, mnist_cnn, cifar_resnet20/32/44/56, mobilenet_v2_tf, mlp([sizes]), "
        "or a torchvision model name",
    )
