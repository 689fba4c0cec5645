"""The IR: interning, typing through the op table, verify(), traversal and printing."""

from __future__ import annotations

import dataclasses

import pytest

from camlang.frontend import syntax as s
from camlang.frontend.check import Checker, check_text
from camlang.frontend.ir import Builder, IRError, Node, postorder, to_text, verify
from camlang.frontend.parser import parse
from camlang.frontend.program import Program
from camlang.frontend.source import SourceFile, Span
from camlang.frontend.value_types import LAYER_MAP, LAYER_TENSOR, SCALAR, AxisError


def test_interning_returns_the_same_node() -> None:
    b = Builder()
    a1, a2 = b.make("A"), b.make("A")
    assert a1 is a2
    g = b.make("G")
    m1 = b.make("mul", (g, a1))
    m2 = b.make("mul", (b.make("G"), b.make("A")))
    assert m1 is m2 and len(b) == 3
    assert b.make("mul", (a1, g)) is not m1  # operand order matters; the simplifier canonicalises


def test_constants_intern_by_value() -> None:
    b = Builder()
    assert b.const(2) is b.const(2.0)
    assert b.const(2) is not b.const(3)
    assert b.const(float("nan")) is b.const(float("nan"))
    assert b.const(1).ty == SCALAR and b.const(1).attr("value") == 1.0


def test_static_attributes_get_defaults_and_take_part_in_interning() -> None:
    b = Builder()
    x = b.make("X")
    n0 = b.make("noise", (x,), {"std": 0.1})
    assert n0.attr_dict == {"std": 0.1, "seed": 0}
    assert b.make("noise", (x,), {"std": 0.1, "seed": 0}) is n0
    assert b.make("noise", (x,), {"std": 0.1, "seed": 1}) is not n0
    with pytest.raises(AxisError, match="needs `std`"):
        b.make("noise", (x,))
    with pytest.raises(KeyError):
        n0.attr("nope")


def test_types_come_from_the_op_table() -> None:
    b = Builder()
    a = b.make("A")
    assert a.ty == LAYER_TENSOR
    assert b.make("sum_c", (a,)).ty == LAYER_MAP
    assert b.make("mean_hw", (b.make("G"),)).ty.axes == frozenset({"C"})
    with pytest.raises(AxisError, match="channels"):
        b.make("sum_c", (b.make("sum_c", (a,)),))
    # a rejected node is not recorded
    assert not any(n.op == "sum_c" and n.args[0].op == "sum_c" for n in b._nodes)


def test_size_and_origins() -> None:
    b = Builder()
    src = SourceFile("f.cam", "A * A")
    a = b.make("A", span=Span(src, 0, 1))
    b.make("A", span=Span(src, 4, 5))
    sq = b.make("mul", (a, a))
    assert sq.size == 3 and b.make("relu", (sq,)).size == 4
    assert [sp.start for sp in b.spans(a)] == [0, 4]
    assert b.spans(sq) == []


def test_postorder_visits_shared_nodes_once_operands_first() -> None:
    b = Builder()
    a = b.make("A")
    g = b.make("G")
    prod = b.make("mul", (g, a))
    root = b.make("add", (prod, b.make("relu", (prod,))))
    order = list(postorder([root, a]))
    assert len(order) == len({n.nid for n in order}) == 5
    pos = {n.nid: i for i, n in enumerate(order)}
    for n in order:
        assert all(pos[x.nid] < pos[n.nid] for x in n.args)
    assert order[-1] is root


def test_verify_accepts_everything_the_checker_builds() -> None:
    program = check_text('import "stdlib/cams.cam"\nmetric k = maximize mean(L) + iou(L, ref(gradcam))\n')
    assert program.diagnostics == []
    roots = [c.node for c in program.cams.values() if c.node is not None]
    roots += [m.node for m in program.metrics.values()]
    verify(program.builder, roots)


def test_verify_rejects_broken_invariants() -> None:
    def tampered(**changes: object) -> tuple[Builder, Node]:
        # a fresh builder whose `sum_c(A)` node was altered after interning
        b = Builder()
        root = b.make("sum_c", (b.make("A"),))
        verify(b, [root])
        forged = dataclasses.replace(root, **changes)  # type: ignore[arg-type]
        b._nodes[root.nid] = forged
        return b, forged

    b, root = tampered()
    with pytest.raises(IRError, match="not built by this builder"):
        verify(Builder(), [root])
    for changes, message in [
        ({"ty": SCALAR}, "has type"),
        ({"op": "nope"}, "unknown op"),
        ({"op": "add"}, "takes 2 operands, has 1"),
        ({"attrs": (("k", 1),)}, "attrs"),
        ({"size": 7}, "wrong size"),
        ({"op": "upsample"}, "ill-typed"),
    ]:
        b, forged = tampered(**changes)
        with pytest.raises(IRError, match=message):
            verify(b, [forged])
    # a second node with the same key: interning broken
    b = Builder()
    a = b.make("A")
    root = b.make("sum_c", (a,))
    twin = Node(len(b), "sum_c", (a,), (), LAYER_MAP, 2)
    b._nodes.append(twin)
    with pytest.raises(IRError, match="interning broken"):
        verify(b, [root, twin])


def test_verify_rejects_a_node_using_a_later_node() -> None:
    b = Builder()
    a = b.make("A")
    late = b.make("G")
    bad = Node(a.nid, "relu", (late,), (), LAYER_TENSOR, 2)
    b._nodes[a.nid] = bad
    with pytest.raises(IRError, match="later node"):
        verify(b, [bad])


def test_to_text_reads_back_to_the_same_node() -> None:
    program = check_text('import "stdlib/cams.cam"\ncam neg = relu(-sum_c(A) - -2 * sum_c(G / (A - G)))\n')
    checker = Checker(program, file_checks=False)
    for name, cam in program.cams.items():
        assert cam.node is not None
        text = to_text(cam.node)
        (stmt,) = parse(f"cam again = {text}").statements
        assert isinstance(stmt, s.CamDecl)
        again = checker.lower(stmt.expr, "cam")
        assert again is cam.node, (name, text)


def test_to_text_examples() -> None:
    b = Builder()
    a, g = b.make("A"), b.make("G")
    diff = b.make("sub", (a, b.make("sub", (g, b.const(1.5)))))
    assert to_text(diff) == "A - (G - 1.5)"
    assert to_text(b.make("mul", (b.make("add", (a, g)), g))) == "(A + G) * G"
    assert to_text(b.make("neg", (b.make("add", (a, g)),))) == "-(A + G)"
    assert to_text(b.make("noise", (b.make("X"),), {"std": 0.5})) == "noise(X, 0.5)"
    assert to_text(b.make("noise", (b.make("X"),), {"std": 0.5, "seed": 3})) == "noise(X, 0.5, seed = 3)"
    assert to_text(b.make("road", (b.make("L"),), {"mode": "morf"})) == 'road(L, mode = "morf")'


def test_builders_are_independent() -> None:
    p1, p2 = Program(SourceFile("a", "")), Program(SourceFile("b", ""))
    c1, c2 = Checker(p1), Checker(p2)
    e = parse("cam x = relu(sum_c(A))").statements[0]
    assert isinstance(e, s.CamDecl)
    n1, n2 = c1.lower(e.expr, "cam"), c2.lower(e.expr, "cam")
    assert n1 is not None and n2 is not None and n1 is not n2
    assert p1.builder.owns(n1) and not p2.builder.owns(n1)
