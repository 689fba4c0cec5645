"""THE op -> z3 table: the compiler's CAM ops and the verifier's network layers.

Two sets of rows share one module and one convention (every row takes the z3 context
explicitly; nothing uses z3's global default context):

- `CAM_Z3`: the expression language's ops (`camlang.frontend.op_table` resolves a row's `z3` kernel here),
  `kernel(ctx, operands, attrs)` on object arrays `[c, h, w]` of z3 terms for one image. Ops
  without an exact meaning in real arithmetic (exp, log, sqrt, non-integer pow) become
  uninterpreted functions, which keeps "equal" answers sound. `lower` walks an IR graph
  through these rows; an op with no row raises `NoSMTEncoding` naming it.
- `Z3_OPS`: a network's layers for the SMT verifier (`camlang.smt.z3_encode` loops over them).
  Weights become exact z3 rationals of their shortest float64 decimal form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import z3

from camlang.frontend.ir import Node, postorder, terminal_key, to_text
from camlang.frontend.op_table import OPS, TERMINALS
from camlang.frontend.value_types import Ty

__all__ = [
    "CAM_Z3",
    "Z3_OPS",
    "Bound",
    "NoSMTEncoding",
    "lower",
    "lower_one",
    "is_exact",
    "symbolic_terminals",
    "real",
    "affine",
    "affine_transpose",
    "relu",
    "relu_grad_gate",
    "maxpool",
    "maxpool_grad",
]

Term: TypeAlias = "z3.ArithRef | float"  # a Python float where constants are folded
#: A z3 truth value, or a Python bool where known bounds decide it.
Condition: TypeAlias = "z3.BoolRef | bool"


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


def relu_grad_gate(gate: Condition, g: Term, ctx: z3.Context) -> Term:
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


def linear_le(A: np.ndarray, c: np.ndarray, ys: Sequence[Term], ctx: z3.Context) -> z3.BoolRef:
    """The polyhedron ``A y <= c`` as one conjunction."""
    return z3.And([_lin(A[r], ys, 0.0, ctx) <= real(c[r], ctx) for r in range(A.shape[0])])


def gradient_close(gs: Sequence[Term], g0: np.ndarray, delta: float, ctx: z3.Context) -> list[Any]:
    """``|g - g0|_inf <= delta``."""
    out = []
    for g, v in zip(gs, g0):
        out += [g <= real(v + delta, ctx), g >= real(v - delta, ctx)]
    return out


#: The network-layer rows of the SMT verifier.
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


# ---- the expression language's ops ------------------------------------------------

Z3Fn = Callable[[z3.Context, tuple[np.ndarray, ...], dict[str, Any]], np.ndarray]


class NoSMTEncoding(Exception):
    """An op in the expression has no SMT meaning (e.g. `pc1`)."""

    def __init__(self, op: str) -> None:
        super().__init__(f"`{op}` has no SMT encoding")
        self.op = op


@dataclass(frozen=True, slots=True)
class Bound:
    """The size of the symbolic instance: channels and grid."""

    channels: int = 2
    height: int = 2
    width: int = 2
    input_channels: int = 1
    input_height: int = 2
    input_width: int = 2

    def describe(self) -> str:
        return f"C={self.channels}, H={self.height}, W={self.width}"

    def shape(self, ty: Ty) -> tuple[int, int, int]:
        """The `[c, h, w]` extent of a value of type `ty` (size 1 on axes it does not carry)."""
        axes = ty.axes
        c = self.channels if "C" in axes else self.input_channels if "Cin" in axes else 1
        h = self.height if "H" in axes else self.input_height if "Hin" in axes else 1
        w = self.width if "W" in axes else self.input_width if "Win" in axes else 1
        return c, h, w


def cam_terminals() -> list[str]:
    """The terminals a cam expression may read, in table order (the symbolic instance's inputs)."""
    return [name for name, row in TERMINALS.items() if "cam" in row.contexts]


def symbolic_terminals(
    bound: Bound,
    prefix: str = "",
    symbol: Callable[[str], Any] | None = None,
    ctx: z3.Context | None = None,
    layers: Iterable[str] = (),
) -> dict[str, np.ndarray]:
    """Fresh symbols for every cam terminal, in the keep-dims layout without batch.

    Shapes come from each terminal's type. `symbol(name)` makes one symbol; without it the
    symbols are z3 reals of `ctx`, which must then be given (z3's global context is never used).
    Each of `layers` adds its own symbols for the layer terminals (`A@layer2`, ...): a tagged
    terminal is a different unknown from the target layer's.
    """
    if symbol is None:
        if ctx is None:
            raise TypeError("symbolic_terminals needs a z3 context (ctx=...) or a symbol factory")
        context = ctx

        def symbol(name: str) -> z3.ArithRef:
            return z3.Real(name, context)

    keys = cam_terminals()
    keys += [f"{n}@{layer}" for layer in sorted(set(layers)) for n in keys if TERMINALS[n].reads_layer]
    out: dict[str, np.ndarray] = {}
    for key in keys:
        arr = np.empty(bound.shape(TERMINALS[key.partition("@")[0]].ty), dtype=object)
        for idx in np.ndindex(arr.shape):
            arr[idx] = symbol(f"{prefix}{key}_{'_'.join(map(str, idx))}")
        out[key] = arr
    return out


def lower(roots: list[Node], terminals: dict[str, np.ndarray], ctx: z3.Context) -> dict[int, np.ndarray]:
    """z3 object arrays for every node reachable from `roots`, from `CAM_Z3` rows."""
    values: dict[int, np.ndarray] = {}
    for node in postorder(roots):
        spec = OPS[node.op]
        if spec.category == "terminal":
            key = terminal_key(node)
            if key not in terminals:  # e.g. a layer the symbolic instance was not given
                raise NoSMTEncoding(to_text(node))
            values[node.nid] = terminals[key]
            continue
        kernel = CAM_Z3.get(node.op)
        if kernel is None:
            raise NoSMTEncoding(node.op)
        args = tuple(values[a.nid] for a in node.args)
        values[node.nid] = kernel(ctx, args, node.attr_dict)
    return values


def lower_one(root: Node, terminals: dict[str, np.ndarray], ctx: z3.Context) -> np.ndarray:
    """The z3 object array of one node."""
    return lower([root], terminals, ctx)[root.nid]


def is_exact(terms: np.ndarray) -> bool:
    """Whether no term applies an uninterpreted function (what `exp`, `log`, `sqrt` and a general
    `pow` lower to): only then does substituting numbers give the terms' real values."""
    seen: set[int] = set()
    stack = [t for t in terms.reshape(-1) if z3.is_expr(t)]
    while stack:
        e = stack.pop()
        if e.get_id() in seen:
            continue
        seen.add(e.get_id())
        if z3.is_app(e) and e.num_args() > 0 and e.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            return False
        stack.extend(e.children())
    return True


def _map(f: Callable[..., Any]) -> Z3Fn:
    """Lift `f(ctx, *scalars)` element-wise over broadcast object arrays."""

    def run(ctx: z3.Context, a: tuple[np.ndarray, ...], k: dict[str, Any]) -> np.ndarray:
        arrays = np.broadcast_arrays(*a)
        out = np.empty(arrays[0].shape, dtype=object)
        for idx in np.ndindex(out.shape):
            out[idx] = f(ctx, *(arr[idx] for arr in arrays))
        return out

    return run


def _reduce(axes: tuple[int, ...], f: Callable[[list[Any]], Any]) -> Z3Fn:
    def run(ctx: z3.Context, a: tuple[np.ndarray, ...], k: dict[str, Any]) -> np.ndarray:
        x = a[0]
        moved = np.moveaxis(x, axes, tuple(range(len(axes))))
        flat = moved.reshape((-1,) + moved.shape[len(axes) :])
        out = np.empty((1,) * len(axes) + flat.shape[1:], dtype=object)
        for idx in np.ndindex(flat.shape[1:]):
            out[(0,) * len(axes) + idx] = f([flat[(i,) + idx] for i in range(flat.shape[0])])
        return np.moveaxis(out, tuple(range(len(axes))), axes)

    return run


def _max(items: list[Term]) -> Term:
    best = items[0]
    for e in items[1:]:
        best = z3.If(e > best, e, best)
    return best


def _min(items: list[Term]) -> Term:
    best = items[0]
    for e in items[1:]:
        best = z3.If(e < best, e, best)
    return best


def _sum(items: list[Term]) -> Term:
    total = items[0]
    for e in items[1:]:
        total = total + e
    return total


def _mean(items: list[Term]) -> Term:
    return _sum(items) / len(items)


def _uninterpreted(name: str) -> Z3Fn:
    """Functions z3 cannot reason about precisely become uninterpreted (sound for equality)."""
    return _map(lambda c, x: z3.Function(name, z3.RealSort(c), z3.RealSort(c))(x))


def _indicator(f: Callable[[Any, Any], Any]) -> Z3Fn:
    return _map(lambda c, a, b: z3.If(f(a, b), z3.RealVal(1, c), z3.RealVal(0, c)))


def _pow_scalar(c: z3.Context, x: z3.ArithRef, p: z3.ArithRef) -> z3.ArithRef:
    if z3.is_rational_value(p) and p.denominator_as_long() == 1 and 0 <= p.numerator_as_long() <= 8:
        n = p.numerator_as_long()
        out = z3.RealVal(1, c)
        for _ in range(n):
            out = out * x
        return z3.simplify(out) if n == 0 else out
    return z3.Function("pow", z3.RealSort(c), z3.RealSort(c), z3.RealSort(c))(x, p)


def _sign(c: z3.Context, x: z3.ArithRef) -> z3.ArithRef:
    return z3.If(x > 0, z3.RealVal(1, c), z3.If(x < 0, z3.RealVal(-1, c), z3.RealVal(0, c)))


CAM_Z3: dict[str, Z3Fn] = {
    "const": lambda c, a, k: np.array([[[z3.RealVal(repr(float(k["value"])), c)]]], dtype=object),
    "add": _map(lambda c, a, b: a + b),
    "sub": _map(lambda c, a, b: a - b),
    "mul": _map(lambda c, a, b: a * b),
    "div": _map(lambda c, a, b: a / b),
    "neg": _map(lambda c, a: -a),
    "eq": _indicator(lambda a, b: a == b),
    "ne": _indicator(lambda a, b: a != b),
    "lt": _indicator(lambda a, b: a < b),
    "le": _indicator(lambda a, b: a <= b),
    "gt": _indicator(lambda a, b: a > b),
    "ge": _indicator(lambda a, b: a >= b),
    "relu": _map(lambda c, x: z3.If(x > 0, x, z3.RealVal(0, c))),
    "abs": _map(lambda c, x: z3.If(x >= 0, x, -x)),
    "sign": _map(_sign),
    "exp": _uninterpreted("exp"),
    "log": _uninterpreted("log"),
    "sqrt": _uninterpreted("sqrt"),
    "pow": _map(_pow_scalar),
    "min": _map(lambda c, a, b: z3.If(a <= b, a, b)),
    "max": _map(lambda c, a, b: z3.If(a >= b, a, b)),
    "where": _map(lambda c, cond, x, y: z3.If(cond != 0, x, y)),
    "sum_c": _reduce((0,), _sum),
    "mean_c": _reduce((0,), _mean),
    "max_c": _reduce((0,), _max),
    "sum_hw": _reduce((1, 2), _sum),
    "mean_hw": _reduce((1, 2), _mean),
    "max_hw": _reduce((1, 2), _max),
    "min_hw": _reduce((1, 2), _min),
    "sum": _reduce((0, 1, 2), _sum),
    "mean": _reduce((0, 1, 2), _mean),
}
