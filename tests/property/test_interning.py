"""Interning: building an expression twice yields one node, and the checker's IR always verifies."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from camlang.frontend.check import check_text
from camlang.frontend.ir import Builder, Node, postorder, verify
from camlang.frontend.value_types import AxisError
from tests.property import op_families

UNARY = op_families.elementwise(1)
BINARY = op_families.elementwise(2)
LEAVES = ["A", "G", "S", "P", "S_ablated"]

#: A recipe: nested tuples, built bottom-up by `build` (so it can be built twice, in two orders).
recipes = st.recursive(
    st.one_of(st.sampled_from(LEAVES), st.sampled_from([0.0, 1.0, 2, -1.5])),
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(UNARY), inner),
        st.tuples(st.sampled_from(BINARY), inner, inner),
        st.tuples(st.sampled_from(["sum_c", "mean_hw"]), inner),
    ),
    max_leaves=12,
)


def build(b: Builder, recipe: object) -> Node:
    if isinstance(recipe, str):
        return b.make(recipe)
    if isinstance(recipe, int | float):
        return b.const(recipe)
    assert isinstance(recipe, tuple)
    op, *args = recipe
    return b.make(op, tuple(build(b, a) for a in args))


@settings(max_examples=300)
@given(recipes, st.lists(recipes, max_size=3))
def test_building_twice_yields_one_node(recipe: object, noise: list[object]) -> None:
    b = Builder()
    try:
        first = build(b, recipe)
    except AxisError:
        return  # ill-typed recipes are rejected before anything is interned for the root
    size = len(b)
    for other in noise:  # unrelated nodes in between must not disturb interning
        try:
            build(b, other)
        except AxisError:
            pass
    assert build(b, recipe) is first
    assert len({n.nid for n in postorder([first])}) <= size
    verify(b, [first])


@settings(max_examples=100)
@given(recipes)
def test_distinct_builders_never_share(recipe: object) -> None:
    b1, b2 = Builder(), Builder()
    try:
        n1 = build(b1, recipe)
    except AxisError:
        return
    n2 = build(b2, recipe)
    assert n1 is not n2 and n1.nid == n2.nid and n1.ty == n2.ty
    assert b1.owns(n1) and not b1.owns(n2)


def test_checker_output_verifies_and_shares_subterms() -> None:
    program = check_text(
        'import "stdlib/cams.cam"\ncam twin = relu(sum_c(mean_hw(G) * A))\n', file_checks=False
    )
    assert program.diagnostics == []
    verify(program.builder, [c.node for c in program.cams.values() if c.node is not None])
    assert program.cams["twin"].node is program.cams["gradcam"].node
    # `relu(G)` appears in gradcampp and layercam: one node
    relu_g = [
        n
        for c in program.cams.values()
        if c.node is not None
        for n in postorder([c.node])
        if n.op == "relu" and n.args[0].op == "G"
    ]
    assert len(relu_g) >= 2 and len({id(n) for n in relu_g}) == 1
