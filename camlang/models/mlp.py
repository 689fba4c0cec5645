"""Fully connected ReLU networks (`mlp([784, 256, 256, 10])`)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from camlang.errors import CamlangError

_MLP_ARCH = re.compile(r"^\s*mlp\s*\(\s*\[?\s*([0-9,\s]+?)\s*\]?\s*\)\s*$")


def parse_mlp_arch(arch: str) -> list[int] | None:
    """The layer sizes of an `"mlp([784, 256, 10])"` / `"mlp(784, 256, 10)"` string, else None."""
    m = _MLP_ARCH.match(arch)
    if m is None:
        return None
    return [int(s) for s in m.group(1).replace(" ", "").split(",") if s]


def _remap_linear_keys(sd: Mapping[str, torch.Tensor], model: nn.Sequential) -> dict[str, torch.Tensor]:
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


def build_mlp(sizes: Sequence[int], weights: str | os.PathLike[str] | None = None) -> nn.Sequential:
    """`Flatten, Linear, ReLU, ..., Linear` with the given layer sizes (at least input and output).

    The leading `nn.Flatten` lets image batches `[B, 1, 28, 28]` go straight in. `weights` is a
    state_dict file (`torch.load(weights_only=True)`); its Linear layers are matched in order,
    so state_dicts saved from a plain `Sequential(Linear, ReLU, ...)` load too.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise CamlangError(f"mlp needs at least two positive layer sizes, got {list(sizes)}")
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    if weights is not None:
        from camlang.models.checkpoint import load_state_dict_file, load_state_dict_into

        sd = load_state_dict_file(weights)
        load_state_dict_into(model, _remap_linear_keys(sd, model), f"mlp({sizes})", weights)
    return model.eval()
