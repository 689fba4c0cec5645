"""Simplifier soundness: every rule preserves values (reference evaluator, random tensors) and,
where its ops have a z3 meaning, z3 proves the original and the rewrite cannot differ."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import z3
from hypothesis import example, given, settings
from hypothesis import strategies as st

from camlang.backends.reference import ReferenceContext, evaluate
from camlang.backends.z3_lower import Bound, NoSMTEncoding, lower, symbolic_terminals
from camlang.frontend.ir import Builder, Node
from camlang.frontend.value_types import AxisError
from camlang.passes.simplify import RULES, simplify
from tests.property import op_families

LEAVES = ["A", "G", "S", "S_ablated"]
UNARY = op_families.elementwise(1)
BINARY = op_families.elementwise(2)
EXACT_UNARY = op_families.exact(1)  # exact in z3's real arithmetic, total on the reals
EXACT_BINARY = op_families.exact(2)

Recipe = object


def recipes(unary: list[str], binary: list[str], consts: list[float]) -> st.SearchStrategy[Recipe]:
    return st.recursive(
        st.one_of(st.sampled_from(LEAVES), st.sampled_from(consts)),
        lambda inner: st.one_of(
            st.tuples(st.sampled_from(unary), inner),
            st.tuples(st.sampled_from(binary), inner, inner),
            st.tuples(st.just("where"), inner, inner, inner),
            st.tuples(st.sampled_from(["sum_c", "max_c"]), inner),
        ),
        max_leaves=6,
    )


def build(b: Builder, r: Recipe) -> Node:
    if isinstance(r, str):
        return b.make(r)
    if isinstance(r, int | float):
        return b.const(r)
    assert isinstance(r, tuple)
    op, *args = r
    return b.make(op, tuple(build(b, a) for a in args))


#: For each rule, a pattern that rule rewrites, built around random subterms x, y, c.
PATTERNS: dict[str, Callable[[Builder, Node, Node, Node], Node]] = {
    "fold": lambda b, x, y, c: b.make(
        "add", (x, b.make("mul", (b.const(3), b.make("sub", (b.const(2), b.const(5))))))
    ),
    "mul_one": lambda b, x, y, c: b.make("mul", (x, b.const(1))),
    "one_mul": lambda b, x, y, c: b.make("mul", (b.const(1), x)),
    "add_zero": lambda b, x, y, c: b.make("add", (x, b.const(0))),
    "zero_add": lambda b, x, y, c: b.make("add", (b.const(0), x)),
    "sub_zero": lambda b, x, y, c: b.make("sub", (x, b.const(0))),
    "div_one": lambda b, x, y, c: b.make("div", (x, b.const(1))),
    "pow_one": lambda b, x, y, c: b.make("pow", (x, b.const(1))),
    "neg_neg": lambda b, x, y, c: b.make("neg", (b.make("neg", (x,)),)),
    "relu_relu": lambda b, x, y, c: b.make("relu", (b.make("relu", (x,)),)),
    "relu_nonneg": lambda b, x, y, c: b.make(
        "relu", (b.make("add", (b.make("abs", (x,)), b.make("relu", (y,)))),)
    ),
    "abs_nonneg": lambda b, x, y, c: b.make(
        "abs", (b.make("max", (b.make("relu", (x,)), b.make("abs", (y,)))),)
    ),
    "abs_neg": lambda b, x, y, c: b.make("abs", (b.make("neg", (x,)),)),
    "idem": lambda b, x, y, c: b.make("add", (b.make("max", (x, x)), b.make("min", (y, y)))),
    "where_same": lambda b, x, y, c: b.make("where", (c, x, x)),
    "sub_sub": lambda b, x, y, c: b.make("sub", (x, b.make("sub", (x, y)))),
    "commute": lambda b, x, y, c: b.make("mul", (b.make("add", (y, x)), b.make("max", (y, x)))),
}
RULE_NAMES = sorted(PATTERNS)


def test_every_rule_has_a_pattern() -> None:
    assert set(PATTERNS) == {r.name for r in RULES}


def instance(rule: str, parts: tuple[Recipe, Recipe, Recipe]) -> tuple[Builder, Node, Node] | None:
    b = Builder()
    try:
        x, y, c = (build(b, p) for p in parts)
        root = PATTERNS[rule](b, x, y, c)
    except AxisError:
        return None
    rule_row = next(r for r in RULES if r.name == rule)
    out = simplify(b, root)
    if out is root:  # the rule did not fire, or its result would have changed the node's type
        direct = rule_row.apply(b, root)
        assert direct is None or direct.ty != root.ty
    return b, root, out


def random_terminals(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def draw(shape: tuple[int, ...]) -> np.ndarray:
        x = rng.normal(size=shape) * rng.choice([0.1, 1.0, 10.0])
        x[rng.random(shape) < 0.2] = 0.0  # exact zeros exercise div, pow and comparisons
        x[rng.random(shape) < 0.1] *= -1
        return x

    return {
        "A": draw((2, 3, 4, 4)),
        "G": draw((2, 3, 4, 4)),
        "S": draw((2, 1, 1, 1)),
        "S_ablated": draw((2, 3, 1, 1)),
    }


parts_all = st.tuples(*(recipes(UNARY, BINARY, [0.0, 1.0, 2.0, -0.5]),) * 3)
parts_exact = st.tuples(*(recipes(EXACT_UNARY, EXACT_BINARY, [0.0, 1.0, 2.0, -3.0]),) * 3)


@pytest.mark.parametrize("rule", RULE_NAMES)
@settings(max_examples=60)
@given(parts=parts_all, seed=st.integers(0, 2**16))
@example(parts=(("sum_c", ("where", "A", 0.0, 0.0)), "A", "A"), seed=0)  # a rewrite once changed a type
def test_rule_preserves_reference_values(rule: str, parts: tuple[Recipe, Recipe, Recipe], seed: int) -> None:
    made = instance(rule, parts)
    if made is None:
        return
    b, root, out = made
    ctx = ReferenceContext(random_terminals(seed))
    values = evaluate([root, out, *root.args], ctx)
    before, after = np.broadcast_arrays(values[root.nid], values[out.nid])
    if next(r for r in RULES if r.name == rule).approx:
        # exact over the reals only: allow rounding relative to the operands' magnitude, where
        # they are finite (x - (x - y) cancels; inf - (inf - y) is NaN, y is not)
        args = np.broadcast_arrays(before, *(values[a.nid] for a in root.args))[1:]
        finite = np.all([np.isfinite(a) for a in args], axis=0)
        scale = max([float(np.abs(a[finite]).max()) for a in args if a[finite].size] + [1.0])
        assert np.allclose(before[finite], after[finite], equal_nan=True, rtol=1e-9, atol=1e-12 * scale), rule
        return
    assert np.allclose(before, after, equal_nan=True, rtol=1e-9, atol=0), rule


@pytest.mark.parametrize("rule", RULE_NAMES)
@settings(max_examples=15)
@given(parts=parts_exact)
def test_rule_is_proved_by_z3(rule: str, parts: tuple[Recipe, Recipe, Recipe]) -> None:
    # Only exact ops and integer constants: `fold` turns e.g. 1 / 3 into the nearest float, which
    # equals the real quotient only up to rounding, and exp/log/sqrt are uninterpreted in z3.
    made = instance(rule, parts)
    if made is None:
        return
    b, root, out = made
    ctx = z3.Context()
    terminals = symbolic_terminals(Bound(channels=2, height=1, width=2), ctx=ctx)
    try:
        values = lower([root, out], terminals, ctx)
    except NoSMTEncoding:  # pragma: no cover - every op used here has an encoding
        pytest.fail("exact ops must have a z3 encoding")
    before, after = np.broadcast_arrays(values[root.nid], values[out.nid])
    solver = z3.Solver(ctx=ctx)
    solver.add(
        z3.Or(
            [z3.simplify(before[i] != after[i]) for i in np.ndindex(before.shape)] or [z3.BoolVal(False, ctx)]
        )
    )
    assert solver.check() == z3.unsat, (rule, solver.model() if solver.check() == z3.sat else None)


def test_whole_expressions_simplify_soundly() -> None:
    # A deterministic sweep over random mixed expressions with the full rule table.
    strategy = recipes(UNARY, BINARY, [0.0, 1.0, 2.0, -0.5])

    @settings(max_examples=150)
    @given(r=strategy, seed=st.integers(0, 2**16))
    def check(r: Recipe, seed: int) -> None:
        b = Builder()
        try:
            root = build(b, r)
        except AxisError:
            return
        out = simplify(b, root)
        values = evaluate([root, out], ReferenceContext(random_terminals(seed)))
        before, after = np.broadcast_arrays(values[root.nid], values[out.nid])
        assert np.allclose(before, after, equal_nan=True, rtol=1e-9, atol=0)
        assert out.size <= root.size

    check()
