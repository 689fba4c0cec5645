"""Fully connected ReLU networks (`mlp([784, 256, 256, 10])`)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from torch import nn

from camlang.errors import CamlangError

_MLP_ARCH = re.compile(r"^\s*mlp\s*\(\s*\[?\s*([0-9,\s]+?)\s*\]?\s*\)\s*$")


def parse_mlp_arch(arch: str) -> list[int] | None:
    """The layer sizes of an `"mlp([784, 256, 10])"` / `"mlp(784, 256, 10)"` string, else None."""
    m = _MLP_ARCH.match(arch)
    if m is None:
        return None
    return [int(s) for s in m.group(1).replace(" ", "").split(",") if s]


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
        from camlang.models.state_dict import load_state_dict_file, load_state_dict_into, remap_linear_keys

        sd = load_state_dict_file(weights)
        load_state_dict_into(model, remap_linear_keys(sd, model), f"mlp({sizes})", weights)
    return model.eval()
