"""Every back end agrees with the reference evaluator on random well-typed CAM expressions.

Expressions are drawn from the op table itself: every cam-context op with a reference kernel is
a candidate, and its operands are chosen among the terms built so far that its own type rule
accepts. A new op is therefore tested the day its row and kernels land. Back ends compared:
- torch eager (float64) to 1e-9;
- the generated standalone-module source (each row's `template`), run on the same values;
- the z3 lowering, substituted with the same (rounded) values, where every op is exact in z3;
- the sympy lowering, for expressions whose ops are all rational.
Leaves include layer-indexed terminals (`A@"l2"`, ...): each back end must read them by their key.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from camlang.backends import reference, sympy_kernels, torch_eager, torch_source, z3_lower
from camlang.backends.torch_source_layers import local_name
from camlang.frontend.ir import Builder, Node, postorder, split_key
from camlang.frontend.op_table import OPS, TERMINALS
from camlang.frontend.value_types import AxisError

C, H, W, N = 2, 2, 3, 2
CIN, HIN, WIN = 1, 4, 6
BOUND = z3_lower.Bound(C, H, W, CIN, HIN, WIN)

#: Every op a cam expression can use that the reference evaluator defines.
CAM_OPS = sorted(
    name
    for name, row in OPS.items()
    if "cam" in row.contexts and row.category in ("elementwise", "reduction") and row.reference is not None
)
LEAVES = sorted(name for name, row in TERMINALS.items() if "cam" in row.contexts)
#: A second layer: its terminals are different values (same shape, so they meet after reductions).
TAGGED = sorted(f"{name}@l2" for name in LEAVES if TERMINALS[name].reads_layer)


def _leaf(b: Builder, key: str) -> Node:
    name, layer = split_key(key)
    return b.make(name, (), {"layer": layer} if layer else {})


def test_the_strategy_covers_every_cam_op() -> None:
    assert {"div", "pow", "where", "exp", "softmax_c", "minmax", "upsample", "pc1"} <= set(CAM_OPS)
    assert {"X", "GX", "S_masked", "S_ablated"} <= set(LEAVES)
    assert all(OPS[name].torch is not None for name in CAM_OPS + LEAVES)


@st.composite
def expressions(draw: st.DrawFn, tagged: bool = False) -> tuple[Builder, Node]:
    """A random well-typed expression, grown by applying table ops to the terms built so far.

    With `tagged`, the leaves include the layer-indexed terminals of a second layer."""
    b = Builder()
    pick = [k for k in LEAVES if not TERMINALS[k].reads_layer] + TAGGED if tagged else LEAVES
    leaves = draw(st.lists(st.sampled_from(pick), min_size=1, max_size=3))
    pool: list[Node] = [_leaf(b, key) for key in leaves]
    pool += [b.const(v) for v in draw(st.lists(st.sampled_from([0.5, 2.0, -1.0, 3.0]), max_size=2))]
    for _ in range(draw(st.integers(1, 5))):
        name = draw(st.sampled_from(CAM_OPS))
        arity = len(OPS[name].tensor_params)
        args: list[Node] = []
        for _ in range(arity):
            fits = [n for n in pool if _accepts(b, name, args + [n], arity)]
            if not fits:
                break
            args.append(draw(st.sampled_from(fits)))
        if len(args) == arity:
            pool.append(b.make(name, tuple(args)))
    root = _to_map(b, pool[-1])
    assume(root.size <= 14)
    event(f"ops: {len(pool)}")
    return b, root


def _accepts(b: Builder, name: str, args: list[Node], arity: int) -> bool:
    """Whether `args` (a prefix of the operands) can start a well-typed call, by the row's type rule."""
    padded = tuple(a.ty for a in args) + tuple(args[-1].ty for _ in range(arity - len(args)))
    try:
        OPS[name].type_rule(padded, {})
    except AxisError:
        return len(args) < arity and _accepts_any_completion(name, args, arity)
    return True


def _accepts_any_completion(name: str, args: list[Node], arity: int) -> bool:
    from camlang.frontend.value_types import SCALAR

    try:
        OPS[name].type_rule(tuple(a.ty for a in args) + (SCALAR,) * (arity - len(args)), {})
    except AxisError:
        return False
    return True


def _to_map(b: Builder, node: Node) -> Node:
    """Close `node` into a layer or input map, the shape a cam has."""
    t = node.ty
    try:
        if t.is_layer_map or t.is_input_map:
            return node
        if t.has_channels and t.has_grid:
            return b.make("sum_c", (node,))
        if t.has_channels:
            return b.make("sum_c", (b.make("mul", (node, b.make("A"))),))
        return b.make("mul", (node, b.make("sum_c", (b.make("A"),))))
    except AxisError:
        assume(False)
        raise


def _terminals(rng: np.random.Generator, decimals: int | None = None) -> dict[str, np.ndarray]:
    out = {}
    for key in LEAVES + TAGGED:
        name = split_key(key)[0]
        c, h, w = BOUND.shape(TERMINALS[name].ty)
        v = rng.uniform(size=(N, c, h, w)) if name == "P" else rng.normal(size=(N, c, h, w))
        out[key] = np.round(v, decimals) if decimals is not None else v
    return out


def _reference(root: Node, terms: dict[str, np.ndarray]) -> np.ndarray:
    with np.errstate(all="ignore"):
        return reference.evaluate_one(root, reference.ReferenceContext(terms, (HIN, WIN)))


def _close(got: np.ndarray, want: np.ndarray) -> None:
    got = np.broadcast_to(got, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@settings(max_examples=120)
@given(expressions(), st.integers(0, 2**16))
def test_torch_eager_and_generated_source_match_reference(made: tuple[Builder, Node], seed: int) -> None:
    _eager_and_source_agree(made[1], seed)


@settings(max_examples=40)
@given(expressions(tagged=True), st.integers(0, 2**16))
def test_layer_indexed_terminals_agree_everywhere(made: tuple[Builder, Node], seed: int) -> None:
    _eager_and_source_agree(made[1], seed)
    if _symbolic_agree(made[1], seed):
        event("symbolic")


def _eager_and_source_agree(root: Node, seed: int) -> None:
    terms = _terminals(np.random.default_rng(seed))
    want = _reference(root, terms)
    tensors = {k: torch.from_numpy(v) for k, v in terms.items()}
    ctx = torch_eager.TorchContext(tensors, (HIN, WIN), torch.float64)
    _close(torch_eager.evaluate([root], ctx)[root.nid].numpy(), want)

    scope: dict[str, object] = {"torch": torch, "F": F}
    scope.update({local_name(k): v for k, v in tensors.items() if TERMINALS[split_key(k)[0]].source_name})
    exec(torch_source.expression_source(root), scope)  # our own generated code, never user text
    cam = scope["cam"]
    assert isinstance(cam, torch.Tensor)
    _close(cam.numpy(), want)


@settings(max_examples=60)
@given(expressions(), st.integers(0, 2**16))
def test_z3_and_sympy_lowerings_match_reference(made: tuple[Builder, Node], seed: int) -> None:
    assume(_symbolic_agree(made[1], seed))


def _symbolic_agree(root: Node, seed: int) -> bool:
    """Compare z3 and sympy with the reference; False when neither applies (no exact meaning)."""
    import sympy
    import z3

    ops = {n.op for n in postorder([root])}
    zctx = z3.Context()
    symbols = z3_lower.symbolic_terminals(BOUND, ctx=zctx, layers={"l2"})
    symbolic = None
    if all(OPS[o].category == "terminal" or OPS[o].z3 is not None for o in ops):
        symbolic = z3_lower.lower_one(root, symbols, zctx)
    # z3 has no exact meaning for uninterpreted functions (exp, log, ...): no values to compare
    z3_applies = symbolic is not None and z3_lower.is_exact(symbolic)
    sympy_applies = all(OPS[o].rational for o in ops)
    if not (z3_applies or sympy_applies):
        return False
    terms = {k: v[:1] for k, v in _terminals(np.random.default_rng(seed), decimals=3).items()}
    want = _reference(root, terms)[0]
    if not np.isfinite(want).all():  # x/0 has no value in exact arithmetic
        return False

    if symbolic is not None and z3_applies:
        event("z3")
        substitution = [
            (arr[idx], z3.RealVal(repr(float(terms[name][(0, *idx)])), zctx))
            for name, arr in symbols.items()
            for idx in np.ndindex(arr.shape)
        ]
        got = np.empty(symbolic.shape)
        for idx in np.ndindex(symbolic.shape):
            got[idx] = float(z3.simplify(z3.substitute(symbolic[idx], *substitution)).as_fraction())
        _close(got, want)
    if sympy_applies:
        event("sympy")
        syms = z3_lower.symbolic_terminals(BOUND, symbol=lambda s: sympy.Symbol(s, real=True), layers={"l2"})
        values = {
            syms[name][idx]: sympy.Rational(Fraction(repr(float(terms[name][(0, *idx)]))))
            for name in syms
            for idx in np.ndindex(syms[name].shape)
        }
        exact = sympy_kernels.lower(root, syms)
        got = np.empty(exact.shape)
        for idx in np.ndindex(exact.shape):
            got[idx] = float(sympy.sympify(exact[idx]).subs(values))
        _close(got, want)
    return True


@pytest.mark.parametrize("name", CAM_OPS)
def test_every_cam_op_is_drawn_and_agrees(name: str) -> None:
    """A deterministic pass over each op once, so a missing kernel fails by name."""
    b = Builder()
    spec = OPS[name]
    maps = [b.make("sum_c", (b.make(t),)) for t in ("A", "X")]
    candidates = [b.make(t) for t in LEAVES] + maps + [b.const(2.0)]
    args: list[Node] = []
    for _ in spec.tensor_params:
        arity = len(spec.tensor_params)
        args.append(next(n for n in candidates if _accepts(b, name, args + [n], arity)))
    root = _to_map(b, b.make(name, tuple(args)))
    terms = _terminals(np.random.default_rng(0))
    want = _reference(root, terms)
    ctx = torch_eager.TorchContext(
        {k: torch.from_numpy(v) for k, v in terms.items()}, (HIN, WIN), torch.float64
    )
    _close(torch_eager.evaluate([root], ctx)[root.nid].numpy(), want)
