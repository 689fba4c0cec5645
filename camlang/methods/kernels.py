"""Torch kernels of the op table's whole-method rows (`smoothgrad`, `xmage`, `deepcover`, `extremal`).

The op table's kernel registry (`camlang.frontend.op_table.KERNEL_TABLES`) names this table, so the torch
back end runs these methods without importing `camlang.methods` itself: the runtime library
depends on the op table, not the other way round. Each kernel reads the model, input and
targets from the torch context and returns a `[B, 1, H_in, W_in]` map.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from camlang.methods.deepcover import deepcover
from camlang.methods.extremal import extremal_perturbation
from camlang.methods.gradient import smoothgrad
from camlang.methods.xmage import xmage_map


class MethodContext(Protocol):
    """What a whole-method kernel reads of the torch back end's context (`TorchContext`)."""

    def method_inputs(self) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
        """The model, the input batch and the targets."""
        ...

    def generator(self, op: str) -> list[torch.Generator]:
        """One generator per image for the random op `op`."""
        ...


#: A kernel: the context, the tensor operands and the static attributes; a `[B, 1, H, W]` map.
Kernel = Callable[[MethodContext, tuple[torch.Tensor, ...], dict[str, Any]], torch.Tensor]


def _smoothgrad(ctx: MethodContext, a: tuple[torch.Tensor, ...], k: dict[str, Any]) -> torch.Tensor:
    model, x, t = ctx.method_inputs()
    with torch.enable_grad():
        return smoothgrad(
            model, x, t, samples=k["samples"], noise=k["noise"], generator=ctx.generator("smoothgrad")
        )[:, None]


def _xmage(ctx: MethodContext, a: tuple[torch.Tensor, ...], k: dict[str, Any]) -> torch.Tensor:
    model, x, t = ctx.method_inputs()
    with torch.enable_grad():
        return xmage_map(model, x, t)[:, None]


def _deepcover(ctx: MethodContext, a: tuple[torch.Tensor, ...], k: dict[str, Any]) -> torch.Tensor:
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


def _extremal(ctx: MethodContext, a: tuple[torch.Tensor, ...], k: dict[str, Any]) -> torch.Tensor:
    model, x, t = ctx.method_inputs()
    with torch.enable_grad():
        return extremal_perturbation(model, x, t, areas=(k["area"],), steps=k["steps"]).map.to(x.dtype)[
            :, None
        ]


TORCH: dict[str, Kernel] = {
    "smoothgrad": _smoothgrad,
    "xmage": _xmage,
    "deepcover": _deepcover,
    "extremal": _extremal,
}
