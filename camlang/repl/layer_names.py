"""Layer paths of a session's declared models, for completion after `@"` and in layer holes.

A loaded model lists its named modules. A model not loaded yet is built without weights on torch's
meta device when its architecture is known (`checkpoint(..., arch = ...)`, `torchvision(...)`,
`mlp(...)`): no file is read and no tensor memory is allocated. Any other model (a checkpoint
without `arch`, ONNX, timm) offers what the language server's static table knows, its `at`
layers at least. Each model's list is built once and kept until its declaration changes or the
model is loaded (then its real modules replace the guess).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from camlang.frontend.program import ModelDef
from camlang.lsp.layers import declared_layers
from camlang.models import build_architecture, build_mlp, layer_names
from camlang.runtime.declaration_loading import LiveModel


@dataclass(frozen=True)
class _Built:
    """One model's list, with the declaration and the loaded model it was built from."""

    model: ModelDef
    live: LiveModel | None
    names: tuple[str, ...]


class LayerNames:
    """Per declared model, its layer paths, built on first use and cached."""

    def __init__(self) -> None:
        self._built: dict[str, _Built] = {}

    def of(self, name: str, model: ModelDef, live: LiveModel | None) -> tuple[str, ...]:
        """The layer paths of model `name` (`live` when it is loaded): its `at` layers first."""
        hit = self._built.get(name)
        if hit is None or hit.model is not model or hit.live is not live:
            hit = _Built(model, live, _enumerate(model, live))
            self._built[name] = hit
        return hit.names


def _enumerate(model: ModelDef, live: LiveModel | None) -> tuple[str, ...]:
    module = live.module if live is not None else _build_on_meta(model)
    if module is None:
        return declared_layers(model)
    at = tuple(x for x in (model.layer, *model.more_layers) if x)
    return tuple(dict.fromkeys(at + tuple(layer_names(module))))


def _build_on_meta(model: ModelDef) -> nn.Module | None:
    """The declared architecture without weights, or None when the declaration does not name one."""
    args = model.args
    arch = {"torchvision": args.get("name"), "checkpoint": args.get("arch")}.get(model.kind)
    try:
        with torch.device("meta"):  # thread-local: a completer thread leaves the session alone
            if model.kind == "mlp":
                return build_mlp(list(args["sizes"]))
            if isinstance(arch, str):
                return build_architecture(arch, args.get("num_classes")).module
    except Exception:  # noqa: BLE001 - completion never fails: e.g. regnet reads tensor values as it is built
        return None
    return None
