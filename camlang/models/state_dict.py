"""State-dict files: checked reading (`weights_only=True`), fitting into a module, key remapping.

A leaf of the model layer: it knows files and tensors, not architectures. The loaders
(`checkpoint`, `mlp`, `torchvision_loader`, `onnx_loader`) build on it.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from camlang.errors import CamlangError

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


def remap_linear_keys(sd: Mapping[str, torch.Tensor], model: nn.Sequential) -> dict[str, torch.Tensor]:
    """Map the i-th (weight, bias) pair of `sd` (by numeric module index) to the i-th Linear."""
    targets = [name for name, m in model.named_children() if isinstance(m, nn.Linear)]
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        prefix, _, leaf = key.rpartition(".")
        groups.setdefault(prefix, {})[leaf] = value

    def order(prefix: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", prefix)) or (0,)

    sources = sorted(groups, key=order)
    if len(sources) != len(targets) or any(set(groups[s]) - {"weight", "bias"} for s in sources):
        return dict(sd)
    return {f"{t}.{leaf}": v for s, t in zip(sources, targets) for leaf, v in groups[s].items()}
