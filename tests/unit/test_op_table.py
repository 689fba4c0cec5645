"""The op table is complete: every column a row claims is present and agrees with the reference.

One pass over every row of `OPS`. A kernel registered for an op that has no row, a row whose
template, z3 or sympy kernel disagrees with the reference evaluator, or a fact (sign, reduced
axes, ranking argument, precedence) that the reference contradicts fails here by op name.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from camlang.backends import reference, sympy_kernels, torch_eager, torch_source, z3_lower
from camlang.frontend.ir import Builder, Node
from camlang.frontend.op_table import KERNEL_TABLES, OPS, TERMINALS, kernels
from camlang.frontend.value_types import IMAGE, INPUT_MAP, POINT, SCALAR, AxisError, Ty

BOUND = z3_lower.Bound(2, 2, 3, 1, 4, 6)
INPUT = (BOUND.input_height, BOUND.input_width)
CAM_TERMINALS = [n for n, r in TERMINALS.items() if "cam" in r.contexts]


def _operands(b: Builder, name: str) -> tuple[Node, ...] | None:
    """Operands of a well-typed call of `name`, chosen by the row's own type rule."""
    pool = [b.make(t) for t in CAM_TERMINALS] + [b.make("sum_c", (b.make(t),)) for t in ("A", "X")]
    spec = OPS[name]
    arity = len(spec.tensor_params)
    for first in pool:
        for rest in [()] if arity == 1 else [(p,) * (arity - 1) for p in pool]:
            args = (first, *rest)
            try:
                spec.type_rule(tuple(a.ty for a in args), {})
            except AxisError:
                continue
            return args
    return None


def _terms(rng: np.random.Generator, nonneg: bool = False) -> dict[str, np.ndarray]:
    out = {}
    for name in CAM_TERMINALS:
        v = np.round(rng.normal(size=(1, *BOUND.shape(TERMINALS[name].ty))), 3)
        out[name] = np.abs(v) if nonneg or name == "P" else v
    return out


def _attrs(name: str) -> dict[str, object]:
    return {p.name: p.default for p in OPS[name].static_params}


COMPUTE = [n for n, r in OPS.items() if r.category in ("elementwise", "reduction") and "cam" in r.contexts]


def test_rows_are_keyed_by_name_and_kernels_name_real_ops() -> None:
    assert all(key == row.name for key, row in OPS.items())
    for backend in KERNEL_TABLES:
        orphans = set(kernels(backend)) - set(OPS)
        assert not orphans, f"{backend} kernels without a row: {sorted(orphans)}"


@pytest.mark.parametrize("name", list(OPS))
def test_row_columns_are_present(name: str) -> None:
    row = OPS[name]
    assert row.doc and row.contexts <= {"cam", "metric"}
    assert row.torch is not None, f"{name} has no torch kernel"
    if row.category in ("terminal", "constant", "elementwise", "reduction"):
        assert row.reference is not None, f"{name} has no reference kernel"
    if row.category == "terminal" and "cam" in row.contexts:
        assert row.source_name, f"cam terminal {name} has no name in generated modules"
        assert row.rational
    if row.category == "terminal" and row.contexts != {"cam", "metric"}:
        assert row.context_hint, f"{name} needs a hint for use in the other context"
    assert (row.symbol is not None or name == "neg") == (row.precedence is not None)
    if row.category != "terminal":  # terminals are the symbols themselves
        assert row.rational == (row.sympy is not None), f"{name}: rational and the sympy kernel disagree"
    if row.ranking_arg is not None:
        assert row.params[row.ranking_arg].kind == "tensor"
    if row.reduces:
        assert row.category == "reduction"


@pytest.mark.parametrize("name", COMPUTE)
def test_every_kernel_agrees_with_the_reference(name: str) -> None:
    import sympy
    import z3

    row = OPS[name]
    b = Builder()
    args = _operands(b, name)
    assert args is not None, f"no well-typed operands for {name}"
    node = b.make(name, args, _attrs(name))
    rng = np.random.default_rng(7)
    terms = _terms(rng)
    with np.errstate(all="ignore"):
        want = reference.evaluate_one(node, reference.ReferenceContext(terms, INPUT))
    tensors = {k: torch.from_numpy(v) for k, v in terms.items()}
    eager = torch_eager.evaluate([node], torch_eager.TorchContext(tensors, INPUT, torch.float64))[node.nid]
    np.testing.assert_allclose(np.broadcast_to(eager.numpy(), want.shape), want, rtol=1e-9, atol=1e-9)

    if row.template is not None:
        scope: dict[str, object] = {"torch": torch, "F": F}
        scope.update({OPS[k].source_name: v for k, v in tensors.items()})
        exec(torch_source.expression_source(node), scope)  # our own generated code
        got = scope["cam"]
        assert isinstance(got, torch.Tensor)
        np.testing.assert_allclose(np.broadcast_to(got.numpy(), want.shape), want, rtol=1e-9, atol=1e-9)

    ctx = z3.Context()
    symbols = z3_lower.symbolic_terminals(BOUND, ctx=ctx)
    lowered = z3_lower.lower_one(node, symbols, ctx) if row.z3 is not None else None
    # an op lowered to an uninterpreted function (exp, log, ...) has no value to compare
    if lowered is not None and z3_lower.is_exact(lowered) and np.isfinite(want).all():
        sub = [
            (arr[i], z3.RealVal(repr(float(terms[k][(0, *i)])), ctx))
            for k, arr in symbols.items()
            for i in np.ndindex(arr.shape)
        ]
        got_z3 = np.array(
            [float(z3.simplify(z3.substitute(t, *sub)).as_fraction()) for t in lowered.reshape(-1)]
        )
        np.testing.assert_allclose(
            np.broadcast_to(got_z3.reshape(lowered.shape), want[0].shape), want[0], rtol=1e-9, atol=1e-9
        )

    if row.sympy is not None and np.isfinite(want).all():
        syms = z3_lower.symbolic_terminals(BOUND, symbol=lambda s: sympy.Symbol(s, real=True))
        values = {
            syms[k][i]: sympy.Rational(Fraction(repr(float(terms[k][(0, *i)]))))
            for k in syms
            for i in np.ndindex(syms[k].shape)
        }
        exact = sympy_kernels.lower(node, syms)
        got_sympy = np.array([float(sympy.sympify(e).subs(values)) for e in exact.reshape(-1)])
        np.testing.assert_allclose(
            np.broadcast_to(got_sympy.reshape(exact.shape), want[0].shape), want[0], rtol=1e-9, atol=1e-9
        )

    if row.reduces:
        for axis in row.reduces:
            assert want.shape[1 + axis] == 1, f"{name} claims to reduce axis {axis}"
    if row.sign == "nonneg":
        assert (want[np.isfinite(want)] >= 0).all(), f"{name} claims nonnegative values"
    if row.sign == "keeps":
        with np.errstate(all="ignore"):
            pos = reference.evaluate_one(node, reference.ReferenceContext(_terms(rng, nonneg=True), INPUT))
        assert (pos[np.isfinite(pos)] >= 0).all(), f"{name} claims to keep nonnegative operands nonnegative"


@pytest.mark.parametrize("name", [n for n, r in OPS.items() if r.ranking_arg is not None])
def test_metric_rows_with_a_ranking_argument_take_a_map_there(name: str) -> None:
    """The operand a row reads only through its ranking is typed to take an input map."""
    row = OPS[name]
    tensors = [p.name for p in row.tensor_params]
    at = tensors.index(row.params[row.ranking_arg].name)
    pool = (IMAGE, INPUT_MAP, POINT, SCALAR)

    def fits(there: Ty) -> bool:
        for rest in itertools.product(pool, repeat=len(tensors) - 1):
            args = (*rest[:at], there, *rest[at:])
            try:
                row.type_rule(args, {})
            except AxisError:
                continue
            return True
        return False

    assert fits(INPUT_MAP), f"{name} does not take a map at its ranking argument"
    assert not fits(IMAGE), f"{name} takes an image at its ranking argument"
