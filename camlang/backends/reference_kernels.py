"""The numpy kernels of the op table, for the reference evaluator (`camlang.backends.reference`).

Slow and obviously correct: the oracle every other back end is tested against. Registered in
the op table's kernel registry and loaded on first use. Ops without an entry (whole methods,
metric ops) have no reference meaning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from camlang.backends.normalize import minmax
from camlang.backends.reference import ReferenceContext

RefFn = Callable[[ReferenceContext, tuple[np.ndarray, ...], dict[str, Any]], np.ndarray]


def _unary(f: Callable[[np.ndarray], np.ndarray]) -> RefFn:
    def run(ctx: ReferenceContext, a: tuple[np.ndarray, ...], k: dict[str, Any]) -> np.ndarray:
        with np.errstate(all="ignore"):
            return f(a[0])

    return run


def _binary(f: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> RefFn:
    def run(ctx: ReferenceContext, a: tuple[np.ndarray, ...], k: dict[str, Any]) -> np.ndarray:
        with np.errstate(all="ignore"):
            return f(a[0], a[1])

    return run


def _terminal(name: str) -> RefFn:
    # a layer terminal's value goes by `A@layer2` when it is read at a tagged layer
    return lambda ctx, a, k: ctx.terminal(f"{name}@{k['layer']}" if k.get("layer") else name)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


def pc1_numpy(x: np.ndarray) -> np.ndarray:
    """Reference `pc1` in numpy, with the same sign convention as `pc1_torch`."""
    n, c, h, w = x.shape
    out = np.zeros((n, 1, h, w))
    for i in range(n):
        flat = x[i].reshape(c, h * w).T
        centered = flat - flat.mean(axis=0, keepdims=True)
        if not np.isfinite(centered).all():  # no components: a NaN map, as the torch kernel gives
            out[i, 0] = np.nan
            continue
        _, _, vh = np.linalg.svd(centered, full_matrices=False)
        v = vh[0]
        size = np.abs(v)
        if v[np.argmax(size >= size.max() * (1 - 1e-4))] < 0:
            v = -v
        out[i, 0] = (centered @ v).reshape(h, w)
    return out


REFERENCE: dict[str, RefFn] = {
    **{
        t: _terminal(t)
        for t in ("A", "G", "S", "P", "S_masked", "S_ablated", "X", "GX", "GX_smooth", "RISE", "L", "MASK")
    },
    "const": lambda ctx, a, k: np.full((1, 1, 1, 1), float(k["value"])),
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "div": _binary(np.divide),
    "neg": _unary(np.negative),
    "eq": _binary(lambda a, b: (a == b).astype(float)),
    "ne": _binary(lambda a, b: (a != b).astype(float)),
    "lt": _binary(lambda a, b: (a < b).astype(float)),
    "le": _binary(lambda a, b: (a <= b).astype(float)),
    "gt": _binary(lambda a, b: (a > b).astype(float)),
    "ge": _binary(lambda a, b: (a >= b).astype(float)),
    "relu": _unary(lambda x: np.maximum(x, 0.0)),
    "abs": _unary(np.abs),
    "sign": _unary(np.sign),
    "exp": _unary(np.exp),
    "log": _unary(np.log),
    "sqrt": _unary(np.sqrt),
    "pow": _binary(np.power),
    "min": _binary(np.minimum),
    "max": _binary(np.maximum),
    "where": lambda ctx, a, k: np.where(a[0] != 0, a[1], a[2]),
    "sum_c": lambda ctx, a, k: a[0].sum(1, keepdims=True),
    "mean_c": lambda ctx, a, k: a[0].mean(1, keepdims=True),
    "max_c": lambda ctx, a, k: a[0].max(1, keepdims=True),
    "sum_hw": lambda ctx, a, k: a[0].sum((2, 3), keepdims=True),
    "mean_hw": lambda ctx, a, k: a[0].mean((2, 3), keepdims=True),
    "max_hw": lambda ctx, a, k: a[0].max((2, 3), keepdims=True),
    "min_hw": lambda ctx, a, k: a[0].min((2, 3), keepdims=True),
    "sum": lambda ctx, a, k: a[0].sum((1, 2, 3), keepdims=True),
    "mean": lambda ctx, a, k: a[0].mean((1, 2, 3), keepdims=True),
    "softmax_c": lambda ctx, a, k: _softmax(a[0]),
    "pc1": lambda ctx, a, k: pc1_numpy(a[0]),
    "minmax": lambda ctx, a, k: minmax(a[0]),
    "upsample": lambda ctx, a, k: ctx.upsample(a[0]),
}
