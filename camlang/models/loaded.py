"""`LoadedModel`: a model in eval mode plus what the drivers need to know about its inputs."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from camlang.frontend.layer_layout import LayerLayout


@dataclass
class LoadedModel:
    """A model ready for inference, with its metadata.

    - `module`: the `nn.Module`, in eval mode.
    - `name`: a short display name ("resnet18", "shapes_cnn").
    - `source`: where it came from, for reports ("torchvision resnet18, weights from /x/r.pth").
    - `input_size`: the expected square input side in pixels, or None when unknown.
    - `normalization`: the `(mean, std)` the inputs must be normalized with, or None for
      inputs in [0, 1] used as they are.
    - `num_classes`, `class_names`: the output classes, when known.
    """

    module: nn.Module
    name: str
    source: str
    input_size: int | None = None
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    num_classes: int | None = None
    class_names: list[str] | None = None
    # a loader's own choice of CAM layer (and its layout), used when the .cam file names none
    default_layer: str | None = None
    default_layout: LayerLayout | None = None
