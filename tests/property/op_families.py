"""Families of ops for generated expressions, read off the op table (never listed by hand).

A new elementwise op joins the generators by its row alone. `exact` ops are those whose z3
lowering uses no uninterpreted function and whose reference value is finite on every real
input tried (so `div`, `log`, `sqrt` and `pow` are left out: z3's reals and IEEE floats part
ways at their poles).
"""

from __future__ import annotations

import itertools

import numpy as np
import z3

from camlang.backends.reference import ReferenceContext, evaluate_one
from camlang.backends.z3_lower import NoSMTEncoding, is_exact, lower_one
from camlang.frontend.ir import Builder
from camlang.frontend.op_table import OPS

_PROBES = (-2.0, -0.5, 0.0, 0.5, 3.0)


def elementwise(arity: int) -> list[str]:
    """Elementwise ops of `arity` tensor operands usable in both cams and metrics."""
    return [
        name
        for name, row in OPS.items()
        if row.category == "elementwise"
        and len(row.params) == arity
        and all(p.kind == "tensor" for p in row.params)
        and row.contexts == frozenset({"cam", "metric"})
    ]


def _total(name: str, arity: int) -> bool:
    for values in itertools.product(_PROBES, repeat=arity):
        b = Builder()
        node = b.make(name, tuple(b.const(v) for v in values))
        with np.errstate(all="ignore"):
            out = np.asarray(evaluate_one(node, ReferenceContext({})), dtype=float)
        if not np.all(np.isfinite(out)):
            return False
    return True


def _z3_exact(name: str, arity: int) -> bool:
    ctx = z3.Context()
    b = Builder()
    node = b.make(name, tuple(b.const(1.0 + i) for i in range(arity)))
    try:
        terms = lower_one(node, {}, ctx)
    except NoSMTEncoding:
        return False
    return is_exact(np.asarray(terms, dtype=object))


def exact(arity: int) -> list[str]:
    """Elementwise ops exact in z3's real arithmetic and total on the reals."""
    return [n for n in elementwise(arity) if _total(n, arity) and _z3_exact(n, arity)]
