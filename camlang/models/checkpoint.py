"""State-dict files (always `weights_only=True`), TorchScript files and named architectures."""

from __future__ import annotations

import difflib
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from camlang.data.base import NORMALIZATION_PRESETS
from camlang.data.shapes import SHAPE_CLASSES
from camlang.errors import CamlangError
from camlang.models.cifar_resnet import CIFAR10_CLASSES, CIFAR_RESNET_DEPTHS, CifarResNet
from camlang.models.demo import ShapesCNN
from camlang.models.loaded import LoadedModel
from camlang.models.mlp import _remap_linear_keys, build_mlp, parse_mlp_arch
from camlang.models.mobilenet_tf import mobilenet_v2_tf
from camlang.models.torchvision_loader import build_torchvision, torchvision_info, torchvision_names

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
_FEW = 5


def check_file(path: str | os.PathLike[str], what: str = "model file") -> Path:
    """`path` as a Path, or a CamlangError naming it (and its absolute form) if it is not a file."""
    p = Path(path).expanduser()
    if not p.is_file():
        state = "is a folder, not a file" if p.is_dir() else "does not exist"
        raise CamlangError(
            f"{what} {str(path)!r} {state} (resolved to {p.resolve()})",
            hint="check the path; relative paths are relative to the current directory",
        )
    return p


def is_torchscript(path: str | os.PathLike[str]) -> bool:
    """True when the file is a TorchScript archive (`torch.jit.save`), not a pickled state_dict."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a state_dict with `torch.load(weights_only=True)`.

    Accepts a `{'state_dict': ...}` (or `model_state_dict`/`model`/`net`) wrapper and strips a
    `module.` prefix (from `DataParallel`). Non-tensor entries are dropped.
    """
    p = check_file(path, "checkpoint")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CamlangError(
            f"checkpoint {str(path)!r} holds pickled Python objects, not only tensors; "
            "camlang loads checkpoints with weights_only=True and refuses it",
            hint="re-save it as a state_dict: torch.save(model.state_dict(), path)",
        ) from exc
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CamlangError(f"cannot read checkpoint {str(path)!r}: {exc}") from exc
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CamlangError(
            f"checkpoint {str(path)!r} does not contain a state_dict (got {type(obj).__name__})",
            hint="save one with torch.save(model.state_dict(), path)",
        )
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    return sd


def load_state_dict_into(
    model: nn.Module, sd: Mapping[str, torch.Tensor], what: str, path: str | os.PathLike[str]
) -> None:
    """`model.load_state_dict(sd)`, turning key and shape mismatches into a CamlangError."""
    expected = model.state_dict()
    sd = dict(sd)
    for k, v in expected.items():
        # Checkpoints from before PyTorch 0.4.1 have no BatchNorm step counters; they are unused in eval.
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = v
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in sd and tuple(sd[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:_FEW])}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:_FEW])}")
        if shapes:
            parts.append(f"shape mismatches (file vs model) ({len(shapes)}): {', '.join(shapes[:_FEW])}")
        raise CamlangError(
            f"checkpoint {str(path)!r} does not fit {what}: " + "; ".join(parts),
            hint="check the architecture name and num_classes",
        )
    model.load_state_dict(sd, strict=True)


def infer_num_classes(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> int | None:
    """Output classes according to `sd`: the rows of the model's last 2-D weight, if present."""
    weights = [k for k, v in model.state_dict().items() if k.endswith("weight") and v.dim() == 2]
    if weights and weights[-1] in sd and sd[weights[-1]].dim() == 2:
        return int(sd[weights[-1]].shape[0])
    return None


def architecture_names() -> list[str]:
    """Every architecture name `load_checkpoint` accepts (besides `mlp([...])`)."""
    cifar = [f"cifar_resnet{d}" for d in CIFAR_RESNET_DEPTHS]
    return ["shapes_cnn", *cifar, "mobilenet_v2_tf", *torchvision_names()]


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
        + "architectures: shapes_cnn, cifar_resnet20/32/44/56, mobilenet_v2_tf, mlp([sizes]), "
        "or a torchvision model name",
    )


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
        sd = _remap_linear_keys(sd, loaded.module)
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
