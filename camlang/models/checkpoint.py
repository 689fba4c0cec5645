"""Checkpoint files: a state_dict loaded into a registered architecture, or a TorchScript archive."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from camlang.errors import CamlangError
from camlang.models.architectures import architecture_names, build_architecture
from camlang.models.loaded import LoadedModel
from camlang.models.mlp import parse_mlp_arch
from camlang.models.state_dict import (
    check_file,
    infer_num_classes,
    is_torchscript,
    load_state_dict_file,
    load_state_dict_into,
    remap_linear_keys,
)

__all__ = [
    "architecture_names",
    "build_architecture",
    "check_file",
    "is_torchscript",
    "load_checkpoint",
    "load_demo_model",
    "load_state_dict_file",
]


def load_checkpoint(
    path: str | os.PathLike[str], arch: str | None, num_classes: int | None = None
) -> LoadedModel:
    """Load a checkpoint file: a state_dict into the architecture `arch`, or a TorchScript file.

    `arch` is "shapes_cnn", "cifar_resnet20/32/44/56", "mlp([784, 256, 10])" or a torchvision
    model name; `num_classes` defaults to what the checkpoint's last layer says. With
    `arch=None` the file must be TorchScript (`torch.jit.save`).
    """
    p = check_file(path, "checkpoint")
    if is_torchscript(p):
        try:
            module = torch.jit.load(str(p), map_location="cpu")
        except (RuntimeError, OSError) as exc:
            raise CamlangError(f"cannot load TorchScript file {str(path)!r}: {exc}") from exc
        return LoadedModel(module.eval(), p.stem, f"TorchScript {p}", None, None, num_classes, None)
    if arch is None:
        raise CamlangError(
            f"checkpoint {str(path)!r} is a state_dict, so it needs an architecture",
            hint='e.g. checkpoint("model.pt", arch = "resnet18"); or save the model with torch.jit.save',
        )
    sd = load_state_dict_file(p)
    if num_classes is None and parse_mlp_arch(arch) is None:
        num_classes = infer_num_classes(build_architecture(arch).module, sd)
    loaded = build_architecture(arch, num_classes)
    if isinstance(loaded.module, nn.Sequential) and loaded.name == "mlp":
        sd = remap_linear_keys(sd, loaded.module)
    load_state_dict_into(loaded.module, sd, arch, path)
    loaded.module.eval()
    loaded.source = f"{loaded.source}, weights from {p}"
    return loaded


def load_demo_model(path: str | os.PathLike[str] | None = None) -> LoadedModel:
    """The trained demo CNN from `models/shapes_cnn.pt` (or `path`)."""
    from camlang.models.demo import DEMO_CHECKPOINT

    p = Path(path) if path is not None else DEMO_CHECKPOINT
    if not p.is_file():
        raise CamlangError(
            f"the demo checkpoint {str(p)!r} is missing",
            hint="create it with: python scripts/train_shapes_cnn.py",
        )
    loaded = load_checkpoint(p, "shapes_cnn")
    loaded.source = f"demo CNN shapes_cnn, weights from {p}"
    return loaded
