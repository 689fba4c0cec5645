"""Layer paths ("layer4", "layer4.2", "features[-1]", "features.6") and the default CAM layer."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import torch
from torch import nn

from camlang.errors import CamlangError

# Steps of a layer path: a leading name, then `.name`, `.6`, `.-1`, `[3]`, `[-1]` or `['key']`.
_FIRST = re.compile(r"([A-Za-z_]\w*|\d+)")
_DOTTED = re.compile(r"\.([A-Za-z_]\w*|-?\d+)")
_BRACKET = re.compile(r"""\[\s*(?:(-?\d+)|(['"])(.*?)\2)\s*\]""")
_ADAPTIVE_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_INPLACE_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.Hardtanh, nn.Hardswish, nn.SiLU)


def layer_names(module: nn.Module) -> list[str]:
    """Dotted names of every submodule, in registration order (the root, "", excluded)."""
    return [name for name, _ in module.named_modules() if name]


def _parse_path(path: str) -> list[str | int]:
    """Split a layer path into child names (str) and positional indices (int)."""
    text = path.strip()
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        bracket = _BRACKET.match(text, pos)
        named = (_FIRST if pos == 0 else _DOTTED).match(text, pos)
        if bracket is not None:
            steps.append(int(bracket.group(1)) if bracket.group(1) is not None else bracket.group(3))
            pos = bracket.end()
        elif named is not None:
            name = named.group(1)
            steps.append(int(name) if name.startswith("-") else name)
            pos = named.end()
        else:
            raise CamlangError(
                f"layer path {path!r} is malformed at {text[pos:]!r}",
                hint='write layers like "layer4", "layer4.1", "features[-1]" or "features.6"',
            )
    if not steps:
        raise CamlangError("empty layer path", hint='name a layer such as "layer4" or "features[-1]"')
    return steps


def _suggest(module: nn.Module, wanted: str) -> str:
    names = layer_names(module)
    close = difflib.get_close_matches(wanted, names, n=5, cutoff=0.5)
    if close:
        return "nearest layer names: " + ", ".join(close)
    top = [n for n, _ in module.named_children()]
    return "top-level layers: " + ", ".join(top[:12]) + (", ..." if len(top) > 12 else "")


def resolve_layer(module: nn.Module, path: str) -> nn.Module:
    """The submodule at a dotted/indexed `path`; a CamlangError with close matches if there is none."""
    current = module
    walked: list[str] = []
    for step in _parse_path(path):
        children = current._modules
        child: nn.Module | None = None
        if isinstance(step, int):
            values = [m for m in children.values() if m is not None]
            if -len(values) <= step < len(values):
                child = values[step]
        else:
            child = children.get(step)
        if child is None:
            where = ".".join(walked) or "the model"
            dotted = ".".join([*walked, str(step)])
            raise CamlangError(
                f"{where} has no layer {str(step)!r} (in layer path {path!r})",
                hint=_suggest(module, dotted),
            )
        walked.append(_name_in_parent(current, child))
        current = child
    return current


def _name_in_parent(parent: nn.Module, child: nn.Module) -> str:
    return next(name for name, m in parent._modules.items() if m is child)


def layer_path_of(module: nn.Module, sub: nn.Module) -> str:
    """The canonical dotted name of submodule `sub` (e.g. "features.6" for `features[-1]`)."""
    for name, m in module.named_modules():
        if m is sub:
            return name
    raise CamlangError("the layer is not part of this model")


@dataclass
class _Record:
    calls: int = 0
    seq: int = -1
    output: object = None


def default_target_layer(module: nn.Module, example_input: torch.Tensor) -> str:
    """The name of the last layer with a spatial (4-D, more than 1x1) output.

    Runs one forward pass with hooks (eval mode, no grad; training flags are restored). From the
    last module to finish with a spatial output, it descends into the child that produced that
    same tensor, as long as the child ran once and is not an in-place activation: ResNets give
    "layer4.1", the demo CNN "features.6".
    """
    records: dict[str, _Record] = {}
    counter = [0]
    handles = []

    def make_hook(name: str):  # noqa: ANN202 - a forward hook
        def hook(_mod: nn.Module, _args: object, output: object) -> None:
            rec = records.setdefault(name, _Record())
            rec.calls += 1
            rec.seq = counter[0]
            rec.output = output
            counter[0] += 1

        return hook

    modules = dict(module.named_modules())
    for name, sub in modules.items():
        if name:
            handles.append(sub.register_forward_hook(make_hook(name)))
    flags = {name: sub.training for name, sub in modules.items()}
    try:
        module.eval()
        with torch.no_grad():
            module(example_input)
    except Exception as exc:  # any failure of the user's model on the example is reported as such
        raise CamlangError(
            f"running the model on an example input of shape {list(example_input.shape)} failed: {exc}",
            hint="check the model's input size and channel count",
        ) from exc
    finally:
        for h in handles:
            h.remove()
        for name, sub in modules.items():
            sub.training = flags[name]

    def spatial(out: object) -> bool:
        return isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1

    # Adaptive pools resample to a fixed grid (VGG's 7x7 avgpool): they are not feature layers.
    ran = [
        (rec.seq, name)
        for name, rec in records.items()
        if spatial(rec.output) and not isinstance(modules[name], _ADAPTIVE_POOLS)
    ]
    if not ran:
        raise CamlangError(
            "the model has no layer with a spatial (4-D) output: it is a non-image model",
            hint="CAMs need a convolutional layer; use gradient methods on the input instead",
        )
    best = max(ran)[1]
    while True:
        parent = records[best]
        kids = [
            (records[f"{best}.{c}"].seq, f"{best}.{c}")
            for c in modules[best]._modules
            if f"{best}.{c}" in records and records[f"{best}.{c}"].seq < parent.seq
        ]
        if not kids:
            return best
        child = max(kids)[1]
        rec, sub = records[child], modules[child]
        inplace = isinstance(sub, _INPLACE_ACTIVATIONS) and bool(getattr(sub, "inplace", False))
        if rec.output is not parent.output or rec.calls != 1 or inplace:
            return best
        best = child
