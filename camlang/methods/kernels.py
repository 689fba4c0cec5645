"""Torch kernels of the op table's whole-method rows (`smoothgrad`, `xmage`, `deepcover`, `extremal`).

The op table's kernel registry (`camlang.frontend.op_table.KERNEL_TABLES`) names this table, so the torch
back end runs these methods without importing `camlang.methods` itself: the runtime library
depends on the op table, not the other way round. Each kernel reads the model, input and
targets from the torch context and returns a `[B, 1, H_in, W_in]` map.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from camlang.methods.deepcover import deepcover
from camlang.methods.extremal import extremal_perturbation
from camlang.methods.gradient import smoothgrad
from camlang.methods.xmage import xmage_map


def _smoothgrad(ctx: Any, a: tuple[torch.Tensor, ...], k: dict[str, Any]) -> torch.Tensor:
    model, x, t = ctx.method_inputs()
    with torch.enable_grad():
        return smoothgrad(
            model, x, t, samples=k["samples"], noise=k["noise"], generator=ctx.generator("smoothgrad")
        )[:, None]


def _xmage(ctx: Any, a: tuple[torch.Tensor, ...], k: dict[str, Any]) -> torch.Tensor:
    model, x, t = ctx.method_inputs()
    with torch.enable_grad():
        return xmage_map(model, x, t)[:, None]


def _deepcover(ctx: Any, a: tuple[torch.Tensor, ...], k: dict[str, Any]) -> torch.Tensor:
    model, x, t = ctx.method_inputs()
    tests = k["tests"]
    with torch.enable_grad():
        result = deepcover(
            model,
            x,
            t,
            k["measure"],
            min_tests=tests,
            max_tests=max(tests, 10 * tests),
            generator=ctx.generator("deepcover"),
        )
    return result.map.to(x.dtype)[:, None]


def _extremal(ctx: Any, a: tuple[torch.Tensor, ...], k: dict[str, Any]) -> torch.Tensor:
    model, x, t = ctx.method_inputs()
    with torch.enable_grad():
        return extremal_perturbation(model, x, t, areas=(k["area"],), steps=k["steps"]).map.to(x.dtype)[
            :, None
        ]


TORCH: dict[str, Callable[[Any, tuple[torch.Tensor, ...], dict[str, Any]], torch.Tensor]] = {
    "smoothgrad": _smoothgrad,
    "xmage": _xmage,
    "deepcover": _deepcover,
    "extremal": _extremal,
}
