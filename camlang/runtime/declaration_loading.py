"""From checked declarations to live objects: loaded models with their layer, and datasets.

Paths in declarations resolve with `camlang.paths.resolve_user_path`. Every failure is a
`CamlangError` carrying the declaration's span, so the CLI shows it at `file:line:col`.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from camlang.data import Dataset, idx, images, mnist, synthetic_shapes
from camlang.errors import CamlangError
from camlang.frontend.layer_layout import LayerLayout
from camlang.frontend.program import DataDef, ModelDef
from camlang.models import (
    LoadedModel,
    build_mlp,
    default_target_layer,
    load_checkpoint,
    load_onnx,
    load_torchvision,
    resolve_layer,
)
from camlang.paths import resolve_user_path


@dataclass
class LiveModel:
    """A loaded model with its target layer, ready for capture."""

    name: str
    loaded: LoadedModel
    layer: nn.Module | None
    layer_path: str | None
    layer_chosen_by_default: bool
    device: torch.device
    more_layers: list[nn.Module] = field(default_factory=list)
    layout: LayerLayout | None = None
    fuse: str = "mean"

    @property
    def module(self) -> nn.Module:
        return self.loaded.module

    @functools.cached_property
    def weights_digest(self) -> str:
        """A digest of the network's parameters and buffers (names, shapes, dtypes and values),
        computed once: what a cached proof about this network depends on."""
        digest = hashlib.blake2b(digest_size=8)
        for name, tensor in sorted(self.module.state_dict().items()):
            digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    @property
    def target_layers(self) -> nn.Module | list[nn.Module] | None:
        """The target layer, or every target layer when the model names several (fused with `fuse`)."""
        if self.layer is None or not self.more_layers:
            return self.layer
        return [self.layer, *self.more_layers]

    def describe(self) -> dict[str, Any]:
        """What the report shows about the model, preprocessing included."""
        norm = self.loaded.normalization
        return {
            "name": self.name,
            "source": self.loaded.source,
            "layer": self.layer_path,
            "layer_chosen_by_default": self.layer_chosen_by_default,
            "input_size": self.loaded.input_size,
            "preprocessing": {"mean": list(norm[0]), "std": list(norm[1])}
            if norm
            else "inputs used as given",
            "num_classes": self.loaded.num_classes,
            "device": str(self.device),
        }


def _path(mdef_args: dict[str, Any], key: str, base: Any, what: str, span: Any) -> str | None:
    value = mdef_args.get(key)
    if value is None:
        return None
    found = resolve_user_path(str(value), base)
    if found is None:
        raise CamlangError(
            f'{what} "{value}" does not exist',
            code="E501",
            span=span,
            hint=f"paths are relative to the .cam file's folder ({base})",
        )
    return str(found)


def _is_path(weights: str) -> bool:
    return weights.endswith((".pt", ".pth", ".bin", ".ckpt")) or "/" in weights or "\\" in weights


def load_model(
    mdef: ModelDef, device: str | torch.device = "cpu", example: torch.Tensor | None = None
) -> LiveModel:
    """Load the declared model and find its target layer (the default when none is named)."""
    args = mdef.args
    try:
        if mdef.kind == "torchvision":
            weights = args.get("weights")
            if isinstance(weights, str) and _is_path(weights):
                weights = _path(args, "weights", mdef.base_dir, "weights file", mdef.span)
            loaded = load_torchvision(args["name"], weights, args.get("num_classes"))
        elif mdef.kind == "checkpoint":
            path = _path(args, "path", mdef.base_dir, "checkpoint", mdef.span)
            assert path is not None
            loaded = load_checkpoint(path, args.get("arch"), args.get("num_classes"))
        elif mdef.kind == "timm":
            from camlang.models.timm_loader import load_timm

            weights = _path(args, "weights", mdef.base_dir, "weights file", mdef.span)
            loaded = load_timm(args["name"], weights, args.get("num_classes"))
        elif mdef.kind == "onnx":
            path = _path(args, "path", mdef.base_dir, "ONNX file", mdef.span)
            assert path is not None
            loaded = load_onnx(path)
        elif mdef.kind == "mlp":
            weights = _path(args, "weights", mdef.base_dir, "weights file", mdef.span)
            sizes = list(args["sizes"])
            loaded = LoadedModel(
                build_mlp(sizes, weights),
                "mlp",
                f"mlp({sizes})" + (f" from {weights}" if weights else " (random weights)"),
                None,
                None,
                sizes[-1],
            )
        else:  # pragma: no cover - the checker only admits the kinds above
            raise CamlangError(f"unknown model source {mdef.kind}")
    except CamlangError as err:
        if err.span is None:
            err.span = mdef.span
        raise
    if args.get("input_size"):
        loaded.input_size = int(args["input_size"])
    dev = torch.device(device)
    loaded.module.to(dev).eval()
    layer_path = mdef.layer
    chosen = False
    layer: nn.Module | None = None
    layout = mdef.layout
    if layer_path is None and loaded.default_layer is not None:
        layer_path, chosen = loaded.default_layer, True
        layout = layout or loaded.default_layout
    if layer_path is not None:
        try:
            layer = resolve_layer(loaded.module, layer_path)
        except CamlangError as err:
            err.span = mdef.span
            raise
    elif mdef.kind != "mlp" and example is not None:
        try:
            layer_path = default_target_layer(loaded.module, example.to(dev))
            layer = resolve_layer(loaded.module, layer_path)
            chosen = True
        except CamlangError:
            layer_path, layer = None, None
    more: list[nn.Module] = []
    for path in mdef.more_layers:
        try:
            more.append(resolve_layer(loaded.module, path))
        except CamlangError as err:
            err.span = mdef.span
            raise
    if more:
        layer_path = ", ".join([str(layer_path), *mdef.more_layers]) + f" (fused: {mdef.fuse})"
    return LiveModel(mdef.name, loaded, layer, layer_path, chosen, dev, more, layout, mdef.fuse)


def load_data(ddef: DataDef) -> Dataset:
    """Build the declared dataset (lazy), then apply limit / shuffle / split."""
    a = ddef.args
    ds: Dataset
    try:
        if ddef.kind == "synthetic_shapes":
            ds = synthetic_shapes(a["count"], a["size"], a["seed"], a.get("classes"), a.get("shortcut", 0.0))
        elif ddef.kind == "images":
            folder = _path(a, "folder", ddef.base_dir, "image folder", ddef.span)
            assert folder is not None
            masks = _path(a, "masks", ddef.base_dir, "mask folder", ddef.span)
            boxes = _path(a, "boxes", ddef.base_dir, "box CSV", ddef.span)
            labels = a.get("labels")
            if isinstance(labels, str):
                labels = _path(a, "labels", ddef.base_dir, "labels CSV", ddef.span)
            concepts = _path(a, "concepts", ddef.base_dir, "concepts CSV", ddef.span)
            ds = images(
                folder,
                a["size"],
                _normalize(a["normalize"]),
                labels=labels,
                masks=masks,
                boxes=boxes,
                channels=a["channels"],
                concepts=concepts,
            )
        elif ddef.kind == "mnist":
            path = _path(a, "path", ddef.base_dir, "MNIST folder", ddef.span)
            assert path is not None
            ds = mnist(path, "train" if a.get("train") else "test", _normalize(a["normalize"]))
        elif ddef.kind == "idx":
            images_path = _path(a, "images", ddef.base_dir, "idx images file", ddef.span)
            labels_path = _path(a, "labels", ddef.base_dir, "idx labels file", ddef.span)
            assert images_path is not None
            ds = idx(images_path, labels_path, _normalize(a["normalize"]))
        else:  # pragma: no cover
            raise CamlangError(f"unknown data source {ddef.kind}")
        if a.get("shuffle") is not None:
            ds = ds.shuffle(int(a["shuffle"]))
        if a.get("split") is not None:
            train, holdout = ds.split(float(a.get("split_fraction", 0.5)), int(a.get("shuffle") or 0))
            ds = train if a["split"] == "train" else holdout
        if a.get("limit") is not None:
            ds = ds.limit(int(a["limit"]))
    except CamlangError as err:
        if err.span is None:
            err.span = ddef.span
        raise
    if len(ds) == 0:
        raise CamlangError(f"data `{ddef.name}` has no images", code="E502", span=ddef.span)
    return ds


def _normalize(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, list) for v in value):
        return (tuple(value[0]), tuple(value[1]))
    return value
