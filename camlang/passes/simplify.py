"""The simplifier: a table of algebraic rewrites, one line each, applied bottom-up to a fixpoint.

Every rule is exact over the reals for finite values (tests check each against the reference
evaluator on random tensors, and ask z3 whether the two sides can differ). Rules that only hold
up to floating-point rounding are marked `approx` and are excluded from bitwise checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from camlang.frontend.ir import Builder, Node, postorder
from camlang.frontend.op_table import COMMUTATIVE, OPS

Rewrite = Callable[[Builder, Node], Node | None]


def _is_const(n: Node, value: float | None = None) -> bool:
    return n.op == "const" and (value is None or n.attr("value") == value)


def nonnegative(n: Node) -> bool:
    """A conservative syntactic check that a node's values are >= 0 (or NaN), from each row's `sign`."""
    sign = OPS[n.op].sign
    if sign == "nonneg":
        return True
    if sign == "keeps":
        return all(nonnegative(a) for a in n.args)
    if n.op == "const":
        return bool(n.attr("value") >= 0)
    # x ** p for an even integer constant p
    return n.op == "pow" and _is_const(n.args[1]) and float(n.args[1].attr("value")) % 2 == 0


def _fold(b: Builder, n: Node) -> Node | None:
    spec = OPS[n.op]
    if spec.category != "elementwise" or not n.args or not all(_is_const(a) for a in n.args):
        return None
    assert spec.reference is not None
    values = tuple(np.full((1, 1, 1, 1), float(a.attr("value"))) for a in n.args)
    out = float(spec.reference(None, values, n.attr_dict).reshape(-1)[0])
    return b.const(out) if np.isfinite(out) else None


def _swap(b: Builder, n: Node) -> Node | None:
    x, y = n.args
    return b.make(n.op, (y, x), n.attr_dict) if x.nid > y.nid else None


@dataclass(frozen=True, slots=True)
class Rule:
    """One rewrite: a name, the rule as text, and the function (None when it does not apply)."""

    name: str
    text: str
    apply: Rewrite
    approx: bool = False


def _arg(i: int) -> Callable[[Builder, Node], Node]:
    return lambda b, n: n.args[i]


RULES: tuple[Rule, ...] = (
    Rule("fold", "op(c1, c2) -> c", _fold),  # constant folding
    Rule(
        "mul_one", "x * 1 -> x", lambda b, n: n.args[0] if n.op == "mul" and _is_const(n.args[1], 1) else None
    ),
    Rule(
        "one_mul", "1 * x -> x", lambda b, n: n.args[1] if n.op == "mul" and _is_const(n.args[0], 1) else None
    ),
    Rule(
        "add_zero",
        "x + 0 -> x",
        lambda b, n: n.args[0] if n.op == "add" and _is_const(n.args[1], 0) else None,
    ),
    Rule(
        "zero_add",
        "0 + x -> x",
        lambda b, n: n.args[1] if n.op == "add" and _is_const(n.args[0], 0) else None,
    ),
    Rule(
        "sub_zero",
        "x - 0 -> x",
        lambda b, n: n.args[0] if n.op == "sub" and _is_const(n.args[1], 0) else None,
    ),
    Rule(
        "div_one", "x / 1 -> x", lambda b, n: n.args[0] if n.op == "div" and _is_const(n.args[1], 1) else None
    ),
    Rule(
        "pow_one",
        "pow(x, 1) -> x",
        lambda b, n: n.args[0] if n.op == "pow" and _is_const(n.args[1], 1) else None,
    ),
    Rule(
        "neg_neg",
        "--x -> x",
        lambda b, n: n.args[0].args[0] if n.op == "neg" and n.args[0].op == "neg" else None,
    ),
    Rule(
        "relu_relu",
        "relu(relu(x)) -> relu(x)",
        lambda b, n: n.args[0] if n.op == "relu" and n.args[0].op == "relu" else None,
    ),
    Rule(
        "relu_nonneg",
        "relu(x) -> x  when x >= 0",
        lambda b, n: n.args[0] if n.op == "relu" and nonnegative(n.args[0]) else None,
    ),
    Rule(
        "abs_nonneg",
        "abs(x) -> x  when x >= 0",
        lambda b, n: n.args[0] if n.op == "abs" and nonnegative(n.args[0]) else None,
    ),
    Rule(
        "abs_neg",
        "abs(-x) -> abs(x)",
        lambda b, n: b.make("abs", (n.args[0].args[0],)) if n.op == "abs" and n.args[0].op == "neg" else None,
    ),
    Rule(
        "idem",
        "max(x, x) -> x, min(x, x) -> x",
        lambda b, n: n.args[0] if n.op in ("max", "min") and n.args[0] is n.args[1] else None,
    ),
    Rule(
        "where_same",
        "where(c, x, x) -> x",
        lambda b, n: n.args[1] if n.op == "where" and n.args[1] is n.args[2] else None,
    ),
    Rule(
        "sub_sub",
        "x - (x - y) -> y",  # what grammars build from `S - s` with s = S - S_masked
        lambda b, n: (
            n.args[1].args[1]
            if n.op == "sub" and n.args[1].op == "sub" and n.args[1].args[0] is n.args[0]
            else None
        ),
        approx=True,
    ),
    Rule(
        "commute",
        "x + y -> y + x (canonical operand order)",
        lambda b, n: _swap(b, n) if n.op in COMMUTATIVE else None,
    ),
)


def simplify(b: Builder, root: Node, rules: tuple[Rule, ...] = RULES, max_rounds: int = 32) -> Node:
    """Rewrite `root` bottom-up with `rules` until nothing applies; returns the new root."""
    memo: dict[int, Node] = {}
    for node in postorder([root]):
        rebuilt = node
        if node.args:
            new_args = tuple(memo[a.nid] for a in node.args)
            if any(x is not y for x, y in zip(new_args, node.args)):
                rebuilt = b.make(node.op, new_args, node.attr_dict)
        memo[node.nid] = _to_fixpoint(b, rebuilt, rules, max_rounds, memo)
    return memo[root.nid]


def _to_fixpoint(b: Builder, node: Node, rules: tuple[Rule, ...], rounds: int, memo: dict[int, Node]) -> Node:
    # Rules only ever build from already-simplified operands, so one node at a time suffices.
    for _ in range(rounds):
        for rule in rules:
            out = rule.apply(b, node)
            # A rewrite must keep the node's type: where(c, x, x) -> x would drop c's axes, and
            # the users of the node (e.g. sum_c) were typed against them.
            if out is not None and out is not node and out.ty == node.ty:
                node = out
                break
        else:
            return node
    return node
