"""Sympy kernels of the op table's rational rows, for the exact normal-form proof.

Only ops exact in rational arithmetic (`OpSpec.rational`) have one. A kernel maps object
arrays `[c, h, w]` of sympy terms (one image) to another; reductions use the row's `reduces`
axes and keep dims. `lower` walks an IR graph through them (`camlang.synth.proof` uses it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import sympy

from camlang.frontend.ir import Node, postorder, terminal_key, to_text
from camlang.frontend.op_table import OPS

SympyFn = Callable[[tuple[np.ndarray, ...], dict[str, Any]], np.ndarray]


def _elementwise(f: Callable[..., Any], arity: int) -> SympyFn:
    lifted = np.frompyfunc(f, arity, 1)
    return lambda a, k: lifted(*np.broadcast_arrays(*a))


_ADD = np.frompyfunc(lambda s, t: s + t, 2, 1)


def _reduction(name: str, mean: bool) -> SympyFn:
    axes = OPS[name].reduces

    def run(a: tuple[np.ndarray, ...], k: dict[str, Any]) -> np.ndarray:
        x = a[0]
        total = x
        for axis in axes:  # an object ufunc reduces one axis at a time
            total = np.expand_dims(np.asarray(_ADD.reduce(total, axis=axis), dtype=object), axis)
        if not mean:
            return total
        count = sympy.Integer(int(np.prod([x.shape[i] for i in axes])))
        return np.asarray(np.frompyfunc(lambda s: s / count, 1, 1)(total), dtype=object)

    return run


SYMPY: dict[str, SympyFn] = {
    "const": lambda a, k: np.array([[[sympy.nsimplify(k["value"], rational=True)]]], dtype=object),
    "add": _elementwise(lambda s, t: s + t, 2),
    "sub": _elementwise(lambda s, t: s - t, 2),
    "mul": _elementwise(lambda s, t: s * t, 2),
    "div": _elementwise(lambda s, t: s / t, 2),
    "neg": _elementwise(lambda s: -s, 1),
    **{
        name: _reduction(name, name.startswith("mean"))
        for name, row in OPS.items()
        if row.rational and row.reduces
    },
}


def lower(root: Node, symbols: dict[str, np.ndarray]) -> np.ndarray:
    """The sympy object array of `root`; terminals come from `symbols` (ValueError for other ops)."""
    values: dict[int, np.ndarray] = {}
    for n in postorder([root]):
        key = terminal_key(n) if OPS[n.op].category == "terminal" else n.op
        if key in symbols:
            v = symbols[key]
        elif OPS[n.op].category == "terminal":
            raise ValueError(to_text(n))  # a layer the symbols were not made for
        else:
            kernel = OPS[n.op].sympy
            if kernel is None:
                raise ValueError(n.op)
            v = kernel(tuple(values[c.nid] for c in n.args), n.attr_dict)
        values[n.nid] = np.asarray(v, dtype=object)
    return values[root.nid]
