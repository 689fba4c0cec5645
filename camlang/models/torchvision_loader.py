"""torchvision classification models, with pretrained weights only from the local hub cache.

camlang never downloads: named weights ("DEFAULT", "IMAGENET1K_V2") load from
`torch.hub.get_dir()/checkpoints/<file>` when that file exists, with `weights_only=True`.
"""

from __future__ import annotations

import difflib
import os
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from camlang.data.base import NORMALIZATION_PRESETS
from camlang.errors import CamlangError
from camlang.models.loaded import LoadedModel

_PATH_SUFFIXES = (".pth", ".pt", ".th", ".tar", ".ckpt", ".bin")
Normalization = tuple[tuple[float, ...], tuple[float, ...]]


@cache
def torchvision_names() -> tuple[str, ...]:
    """The classification models torchvision provides (lower-case builder names)."""
    return tuple(torchvision.models.list_models(module=torchvision.models))


def _check_name(name: str) -> str:
    key = name.strip().lower()
    if key not in torchvision_names():
        close = difflib.get_close_matches(key, torchvision_names(), n=4, cutoff=0.5)
        raise CamlangError(
            f"unknown torchvision model {name!r}",
            hint=(f"did you mean {', '.join(close)}?" if close else "see torchvision.models.list_models()"),
        )
    return key


def _weights_enum(name: str) -> Any | None:
    try:
        return torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return None


def torchvision_info(name: str) -> tuple[int | None, Normalization, list[str] | None]:
    """(input size, normalization, ImageNet categories) from the model's DEFAULT weights metadata."""
    enum = _weights_enum(name)
    if enum is None:
        return None, NORMALIZATION_PRESETS["imagenet"], None
    return _weights_info(enum.DEFAULT)


def _weights_info(weights: WeightsEnum) -> tuple[int | None, Normalization, list[str] | None]:
    transform = weights.transforms()
    crop = getattr(transform, "crop_size", None)
    size = int(crop[0]) if crop else None
    mean = tuple(float(m) for m in getattr(transform, "mean", NORMALIZATION_PRESETS["imagenet"][0]))
    std = tuple(float(s) for s in getattr(transform, "std", NORMALIZATION_PRESETS["imagenet"][1]))
    categories = weights.meta.get("categories")
    return size, (mean, std), list(categories) if categories else None


def build_torchvision(name: str, num_classes: int, **kwargs: object) -> nn.Module:
    """A randomly initialised torchvision model (never touches the network)."""
    try:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    except (TypeError, ValueError) as exc:
        raise CamlangError(
            f"cannot build torchvision model {name!r} with {num_classes} classes: {exc}"
        ) from exc


def _pretrained_kwargs(name: str, weights: WeightsEnum) -> dict[str, Any]:
    """The constructor arguments torchvision's builder sets itself when given `weights`."""
    kwargs: dict[str, Any] = {}
    if name in ("inception_v3", "googlenet"):
        kwargs.update(transform_input=True, aux_logits=True, init_weights=False)
    elif name.startswith("vit_"):
        kwargs["image_size"] = weights.meta["min_size"][0]
    elif name.startswith("maxvit"):
        kwargs["input_size"] = weights.meta["min_size"]
    return kwargs


def _drop_aux_heads(model: nn.Module) -> None:
    """Inference models do not need the auxiliary classifiers that pretrained files carry."""
    if hasattr(model, "aux_logits"):
        setattr(model, "aux_logits", False)  # noqa: B010 - typed as a Module attribute
        for attr in ("AuxLogits", "aux1", "aux2"):
            if hasattr(model, attr):
                setattr(model, attr, None)


def looks_like_path(weights: str) -> bool:
    """Whether a `weights` string names a file rather than a weights enum member."""
    return (
        "/" in weights
        or os.sep in weights
        or weights.lower().endswith(_PATH_SUFFIXES)
        or Path(weights).expanduser().exists()
    )


def _resolve_weights(name: str, weights: str) -> WeightsEnum:
    enum = _weights_enum(name)
    if enum is None:
        raise CamlangError(
            f"torchvision model {name!r} has no pretrained weights", hint="pass a weights file"
        )
    member = weights.split(".")[-1].upper()
    if member == "DEFAULT":
        return enum.DEFAULT
    if member not in enum.__members__:
        raise CamlangError(
            f"torchvision model {name!r} has no weights {weights!r}",
            hint="available: " + ", ".join(enum.__members__) + ", or a path to a .pth file",
        )
    return enum[member]


def load_torchvision(
    name: str, weights: str | os.PathLike[str] | None = None, num_classes: int | None = None
) -> LoadedModel:
    """A torchvision classification model in eval mode.

    `weights`: None (random init), a weights name ("DEFAULT", "IMAGENET1K_V2") that must already be
    in the local torch hub cache (no downloads), or a path to a state_dict file (loaded with
    `weights_only=True`; `num_classes` defaults to what the file's classifier says).
    """
    from camlang.models.state_dict import infer_num_classes, load_state_dict_file, load_state_dict_into

    key = _check_name(name)
    input_size, norm, categories = torchvision_info(key)
    if weights is None:
        n = num_classes or 1000
        names = categories if categories is not None and n == len(categories) else None
        module = build_torchvision(key, n)
        return LoadedModel(
            module.eval(), key, f"torchvision {key} (random weights)", input_size, norm, n, names
        )

    w = os.fspath(weights)
    if looks_like_path(w):
        sd = load_state_dict_file(w)
        n = num_classes or infer_num_classes(build_torchvision(key, 1000), sd) or 1000
        module = build_torchvision(key, n)
        load_state_dict_into(module, sd, f"torchvision {key}", w)
        names = categories if categories is not None and n == len(categories) else None
        source = f"torchvision {key}, weights from {Path(w).expanduser()}"
        return LoadedModel(module.eval(), key, source, input_size, norm, n, names)

    member = _resolve_weights(key, w)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(member.url)
    if not cached.is_file():
        raise CamlangError(
            f"pretrained weights {type(member).__name__}.{member.name} for {key} are not in the local torch "
            f"hub cache (looked for {cached}); camlang never downloads and there is no network",
            hint=f'pass a local weights file instead: torchvision("{key}", weights = "path/to/{key}.pth")',
        )
    input_size, norm, categories = _weights_info(member)
    n = len(categories) if categories else 1000
    if num_classes is not None and num_classes != n:
        raise CamlangError(f"{key} weights {member.name} have {n} classes, not {num_classes}")
    module = build_torchvision(key, n, **_pretrained_kwargs(key, member))
    load_state_dict_into(module, load_state_dict_file(cached), f"torchvision {key}", cached)
    _drop_aux_heads(module)
    source = f"torchvision {key}, weights {member.name} from {cached}"
    return LoadedModel(module.eval(), key, source, input_size, norm, n, categories)
