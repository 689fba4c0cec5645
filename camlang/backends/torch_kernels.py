"""The torch kernels of the op table: one entry per op, `kernel(ctx, operands, attrs) -> tensor`.

The op table (`camlang.frontend.op_table`) names this module in its kernel registry and loads it the first
time a torch kernel is asked for, so the front end never imports torch. Values use the keep-dims
layout `[N, c, h, w]`. Whole saliency methods register from `camlang.methods.kernels` and metric
ops from `camlang.metrics.kernels`, each in its own table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch

from camlang.backends.normalize import minmax


class KernelContext(Protocol):
    """What the torch kernels of this table read besides their operands."""

    dtype: torch.dtype
    device: torch.device

    def terminal(self, name: str) -> torch.Tensor:
        """A terminal's value for the batch (KeyError or a user error when it is not there)."""
        ...

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        """`x` resized bilinearly to the input size."""
        ...


TorchFn = Callable[[KernelContext, tuple[torch.Tensor, ...], dict[str, Any]], torch.Tensor]


def _unary(f: Callable[[torch.Tensor], torch.Tensor]) -> TorchFn:
    return lambda ctx, a, k: f(a[0])


def _binary(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> TorchFn:
    return lambda ctx, a, k: f(a[0], a[1])


def _terminal(name: str) -> TorchFn:
    # a layer terminal's value goes by `A@layer2` when it is read at a tagged layer
    return lambda ctx, a, k: ctx.terminal(f"{name}@{k['layer']}" if k.get("layer") else name)


def pc1_torch(x: torch.Tensor) -> torch.Tensor:
    """First principal component projection of `[N, C, H, W]` over channels -> `[N, 1, H, W]`.

    Sign convention (SVD is defined up to sign): the component's channel loading is oriented
    so that its largest-magnitude entry is positive (the first of entries tied to within 1e-4).
    pytorch-grad-cam leaves the sign to numpy's SVD; parity tests compare against both
    orientations.
    """
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w).transpose(1, 2)
    centered = flat - flat.mean(dim=1, keepdim=True)
    # an image with a NaN or infinite value has no components (LAPACK's SVD would fail on it):
    # it gets a NaN map, and the others their projections
    finite = torch.isfinite(centered).all(dim=2).all(dim=1)
    if not bool(finite.all()):
        centered = torch.where(finite[:, None, None], centered, torch.zeros_like(centered))
    if centered.device.type == "cpu" and not centered.requires_grad:
        # torch's batched CPU SVD can be ~50x slower than LAPACK through numpy when threads
        # contend; the result is the same decomposition.
        vh = torch.from_numpy(np.linalg.svd(centered.numpy(), full_matrices=False)[2])
    else:
        _, _, vh = torch.linalg.svd(centered, full_matrices=False)
    v = vh[:, 0, :]
    # the pivot is the first of the loadings tied (to 1e-4) for the largest magnitude, so that two
    # SVD implementations that differ in the last bits still orient a tied component alike
    size = v.abs()
    tied = size >= size.amax(dim=1, keepdim=True) * (1 - 1e-4)
    pivot = v.gather(1, tied.to(v.dtype).argmax(dim=1, keepdim=True))
    v = v * torch.where(pivot < 0, -1.0, 1.0).to(v.dtype)
    proj = (centered @ v.unsqueeze(-1)).squeeze(-1)
    proj = torch.where(finite[:, None], proj, torch.full_like(proj, float("nan")))
    return proj.reshape(n, 1, h, w)


def _const(ctx: KernelContext, a: tuple[torch.Tensor, ...], k: dict[str, Any]) -> torch.Tensor:
    return torch.tensor(float(k["value"]), dtype=ctx.dtype, device=ctx.device).reshape(1, 1, 1, 1)


def _compare(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> TorchFn:
    return lambda ctx, a, k: f(a[0], a[1]).to(a[0].dtype)


TORCH: dict[str, TorchFn] = {
    **{
        t: _terminal(t)
        for t in ("A", "G", "S", "P", "S_masked", "S_ablated", "X", "GX", "GX_smooth", "RISE", "L", "MASK")
    },
    "const": _const,
    "add": _binary(torch.add),
    "sub": _binary(torch.sub),
    "mul": _binary(torch.mul),
    "div": _binary(torch.div),
    "neg": _unary(torch.neg),
    "eq": _compare(torch.eq),
    "ne": _compare(torch.ne),
    "lt": _compare(torch.lt),
    "le": _compare(torch.le),
    "gt": _compare(torch.gt),
    "ge": _compare(torch.ge),
    "relu": _unary(torch.relu),
    "abs": _unary(torch.abs),
    "sign": _unary(torch.sign),
    "exp": _unary(torch.exp),
    "log": _unary(torch.log),
    "sqrt": _unary(torch.sqrt),
    "pow": _binary(torch.pow),
    "min": _binary(torch.minimum),
    "max": _binary(torch.maximum),
    "where": lambda ctx, a, k: torch.where(a[0] != 0, a[1], a[2]),
    "sum_c": lambda ctx, a, k: a[0].sum(1, keepdim=True),
    "mean_c": lambda ctx, a, k: a[0].mean(1, keepdim=True),
    "max_c": lambda ctx, a, k: a[0].amax(1, keepdim=True),
    "sum_hw": lambda ctx, a, k: a[0].sum((2, 3), keepdim=True),
    "mean_hw": lambda ctx, a, k: a[0].mean((2, 3), keepdim=True),
    "max_hw": lambda ctx, a, k: a[0].amax((2, 3), keepdim=True),
    "min_hw": lambda ctx, a, k: a[0].amin((2, 3), keepdim=True),
    "sum": lambda ctx, a, k: a[0].sum((1, 2, 3), keepdim=True),
    "mean": lambda ctx, a, k: a[0].mean((1, 2, 3), keepdim=True),
    "softmax_c": lambda ctx, a, k: torch.softmax(a[0], dim=1),
    "pc1": lambda ctx, a, k: pc1_torch(a[0]),
    "minmax": lambda ctx, a, k: minmax(a[0]),
    "upsample": lambda ctx, a, k: ctx.upsample(a[0]),
}
