"""The one op -> z3 table of the verifier.

Each row turns numbers and z3 terms into z3 terms (and side constraints). The reference and the
naive encodings (`camlang.smt.z3_encode`) are loops over these rows, and the compiler's op table
(`camlang/backends/z3_lower.py`) can reference the same rows by name. Weights become exact z3
rationals of their shortest float64 decimal form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import z3

__all__ = [
    "Z3_OPS",
    "real",
    "affine",
    "affine_transpose",
    "relu",
    "relu_grad_gate",
    "maxpool",
    "maxpool_grad",
]

Term = Any  # z3.ArithRef or a Python float (constants are folded)


def real(v: float, ctx: z3.Context) -> z3.ArithRef:
    """An exact z3 rational for a float (its shortest decimal repr)."""
    return z3.RealVal(repr(float(v)), ctx)


def _lin(coefs: np.ndarray, terms: Sequence[Term], const: float, ctx: z3.Context) -> Term:
    parts = [
        real(c, ctx) * t if not isinstance(t, float) else real(c * t, ctx)
        for c, t in zip(coefs, terms)
        if c != 0
    ]
    parts = [p for p in parts if not (isinstance(p, z3.RatNumRef) and p.as_fraction() == 0)]
    if const != 0 or not parts:
        parts.append(real(const, ctx))
    return parts[0] if len(parts) == 1 else z3.Sum(parts)


def affine(W: np.ndarray, b: np.ndarray, xs: Sequence[Term], ctx: z3.Context) -> list[Term]:
    """``W x + b``."""
    return [_lin(W[i], xs, float(b[i]), ctx) for i in range(W.shape[0])]


def affine_transpose(W: np.ndarray, gs: Sequence[Term], ctx: z3.Context) -> list[Term]:
    """``W^T g``: the backward pass of an affine map."""
    return [_lin(W[:, j], gs, 0.0, ctx) for j in range(W.shape[1])]


def relu(
    z: Term, ctx: z3.Context, lower: float | None = None, upper: float | None = None
) -> tuple[Term, Any]:
    """``(relu(z), gate)`` with ``gate = z > 0`` (torch: relu'(0) = 0). Known bounds fix the phase."""
    if lower is not None and lower > 0:
        return z, True
    if upper is not None and upper <= 0:
        return real(0.0, ctx), False
    gate = z > 0
    return z3.If(gate, z, real(0.0, ctx)), gate


def relu_grad_gate(gate: Any, g: Term, ctx: z3.Context) -> Term:
    """Gradient through a ReLU: ``g`` where the gate is open, else 0."""
    if gate is True:
        return g
    if gate is False:
        return real(0.0, ctx)
    return z3.If(gate, g, real(0.0, ctx))


def maxpool(
    xs: Sequence[Term], groups: Sequence[Sequence[int]], ctx: z3.Context
) -> tuple[list[Term], list[list[Any]]]:
    """Max over each group, plus per group the selector of the (first) arg-max, as torch routes it."""
    outs, sels = [], []
    for g in groups:
        members = [xs[i] for i in g]
        sel = []
        for a, xa in enumerate(members):
            conds = [xa >= xb for b, xb in enumerate(members) if b > a] + [
                xa > xb for b, xb in enumerate(members) if b < a
            ]
            sel.append(z3.And(conds) if conds else z3.BoolVal(True, ctx))
        out = members[-1]
        for a in range(len(members) - 2, -1, -1):
            out = z3.If(sel[a], members[a], out)
        outs.append(out)
        sels.append(sel)
    return outs, sels


def maxpool_grad(
    sels: Sequence[Sequence[Any]],
    groups: Sequence[Sequence[int]],
    g_out: Sequence[Term],
    in_size: int,
    ctx: z3.Context,
) -> list[Term]:
    """Route each output gradient to its arg-max input."""
    acc: list[list[Term]] = [[] for _ in range(in_size)]
    for g, sel, go in zip(groups, sels, g_out):
        for i, s in zip(g, sel):
            acc[i].append(z3.If(s, go, real(0.0, ctx)))
    return [z3.Sum(a) if len(a) > 1 else (a[0] if a else real(0.0, ctx)) for a in acc]


def box(xs: Sequence[Term], lo: np.ndarray, hi: np.ndarray, ctx: z3.Context) -> list[Any]:
    """``lo <= x <= hi``."""
    return [c for x, a, b in zip(xs, lo, hi) for c in (x >= real(a, ctx), x <= real(b, ctx))]


def linear_le(A: np.ndarray, c: np.ndarray, ys: Sequence[Term], ctx: z3.Context) -> Any:
    """The polyhedron ``A y <= c`` as one conjunction."""
    return z3.And([_lin(A[r], ys, 0.0, ctx) <= real(c[r], ctx) for r in range(A.shape[0])])


def gradient_close(gs: Sequence[Term], g0: np.ndarray, delta: float, ctx: z3.Context) -> list[Any]:
    """``|g - g0|_inf <= delta``."""
    out = []
    for g, v in zip(gs, g0):
        out += [g <= real(v + delta, ctx), g >= real(v - delta, ctx)]
    return out


Z3_OPS: dict[str, Callable[..., Any]] = {
    "affine": affine,  # W x + b
    "affine_transpose": affine_transpose,  # W^T g (backward of affine)
    "relu": relu,  # (If(z > 0, z, 0), z > 0)
    "relu_grad_gate": relu_grad_gate,  # If(gate, g, 0)
    "maxpool": maxpool,  # max per window + arg-max selectors
    "maxpool_grad": maxpool_grad,  # gradient routed to the arg-max
    "box": box,  # input box
    "linear_le": linear_le,  # unsafe output polyhedron
    "gradient_close": gradient_close,  # |VG(x') - VG(x)|_inf <= delta
}
