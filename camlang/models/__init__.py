"""Model loaders (torchvision, checkpoints, TorchScript, ONNX, MLPs), the demo CNN and layer paths.

Every loader returns a `LoadedModel` whose module is in eval mode. Checkpoints are always read
with `torch.load(weights_only=True)`, and nothing is ever downloaded.
"""

from camlang.models.checkpoint import (
    architecture_names,
    build_architecture,
    is_torchscript,
    load_checkpoint,
    load_demo_model,
    load_state_dict_file,
)
from camlang.models.cifar_resnet import CIFAR10_CLASSES, CifarResNet
from camlang.models.demo import DEMO_CHECKPOINT, DEMO_TARGET_LAYER, ShapesCNN
from camlang.models.layers import default_target_layer, layer_names, layer_path_of, resolve_layer
from camlang.models.loaded import LoadedModel
from camlang.models.mlp import build_mlp
from camlang.models.onnx_loader import load_onnx
from camlang.models.torchvision_loader import load_torchvision, torchvision_names

__all__ = [
    "CIFAR10_CLASSES",
    "DEMO_CHECKPOINT",
    "DEMO_TARGET_LAYER",
    "CifarResNet",
    "LoadedModel",
    "ShapesCNN",
    "architecture_names",
    "build_architecture",
    "build_mlp",
    "default_target_layer",
    "is_torchscript",
    "layer_names",
    "layer_path_of",
    "load_checkpoint",
    "load_demo_model",
    "load_onnx",
    "load_state_dict_file",
    "load_torchvision",
    "resolve_layer",
    "torchvision_names",
]
