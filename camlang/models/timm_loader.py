"""timm models (`pip install 'camlang[timm]'`): `timm("resnet50", weights = "resnet50.pth")`.

Weights come only from local files (state_dict `.pth`/`.pt`/`.bin`, read with `weights_only=True`,
or `.safetensors`); `pretrained=True` is never used, so nothing is downloaded. The model's own
pretrained config gives the input size and normalization. Common families get a default target
layer: ResNet `layer4[-1]`, ConvNeXt `stages[-1]`, EfficientNet / MobileNet `bn2`, ViT / DeiT
`blocks[-1].norm1` with a token layout from the model's number of prefix tokens.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from camlang.errors import CamlangError
from camlang.frontend.layer_layout import LayerLayout
from camlang.models.checkpoint import load_state_dict_file
from camlang.models.loaded import LoadedModel

INSTALL_HINT = "install the extra: pip install 'camlang[timm]'"


def _timm() -> ModuleType:
    try:
        import timm
    except ImportError:
        raise CamlangError("timm models need the timm package", hint=INSTALL_HINT) from None
    return timm


def default_layer(module: nn.Module) -> tuple[str, LayerLayout | None] | None:
    """A sensible CAM layer (path, layout) for common timm families, or None to find one generically."""
    kind = type(module).__name__
    if kind == "ResNet" and hasattr(module, "layer4"):
        return "layer4[-1]", None
    if kind == "ConvNeXt" and hasattr(module, "stages"):
        return "stages[-1]", None
    if kind in ("EfficientNet", "MobileNetV3") and hasattr(module, "bn2"):
        return "bn2", None
    if hasattr(module, "blocks") and hasattr(module, "num_prefix_tokens") and hasattr(module, "patch_embed"):
        grid = getattr(module.patch_embed, "grid_size", None)
        grid_hw = (int(grid[0]), int(grid[1])) if grid is not None else None
        return "blocks[-1].norm1", LayerLayout(
            "tokens", int(getattr(module, "num_prefix_tokens", 0)), grid_hw
        )
    return None


def _weights(path: str) -> dict[str, Any]:
    if path.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise CamlangError(
                f"{path}: .safetensors files need the safetensors package", hint=INSTALL_HINT
            ) from None
        try:
            return dict(load_file(path))
        except Exception as exc:  # safetensors raises its own error types
            raise CamlangError(f"cannot read weights file {path!r}: {exc}") from exc
    return load_state_dict_file(path)


def load_timm(name: str, weights: str | None = None, num_classes: int | None = None) -> LoadedModel:
    """Build timm model `name` (random weights, or a local weights file) with its preprocessing config."""
    timm = _timm()
    known = timm.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
        raise CamlangError(
            f"timm has no model {name!r}",
            hint=("did you mean: " + ", ".join(close)) if close else "see timm.list_models()",
        )
    kwargs: dict[str, Any] = {"pretrained": False}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    module = timm.create_model(name, **kwargs)
    source = f"timm {name}"
    if weights is not None:
        if not Path(weights).is_file():
            raise CamlangError(
                f'weights file "{weights}" does not exist', hint="timm weights must be a local file"
            )
        state = _weights(weights)
        missing, unexpected = module.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CamlangError(
                f"weights file {weights!r} does not fit timm {name}: {len(missing)} missing and "
                f"{len(unexpected)} unexpected keys (e.g. {(list(missing) + list(unexpected))[:3]})",
                hint="check the architecture name, or num_classes for a fine-tuned head",
            )
        source += f", weights from {weights}"
    else:
        source += " (random weights)"
    cfg = getattr(module, "pretrained_cfg", None) or {}
    size = cfg.get("input_size")
    mean, std = cfg.get("mean"), cfg.get("std")
    norm = (tuple(float(v) for v in mean), tuple(float(v) for v in std)) if mean and std else None
    loaded = LoadedModel(
        module.eval(), name, source, int(size[-1]) if size else None, norm, int(module.num_classes)
    )
    found = default_layer(module)
    if found is not None:
        loaded.default_layer, loaded.default_layout = found
    return loaded
