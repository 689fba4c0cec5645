"""The simplifier: each rule on a concrete input, the fixpoint driver, and `nonnegative`."""

from __future__ import annotations

import pytest

from camlang.frontend import syntax as s
from camlang.frontend.check import Checker
from camlang.frontend.ir import Builder, Node, postorder, to_text, verify
from camlang.frontend.parser import parse
from camlang.frontend.program import Program
from camlang.frontend.source import SourceFile
from camlang.passes.simplify import RULES, nonnegative, simplify


def lower(text: str, program: Program | None = None) -> tuple[Builder, Node]:
    program = program or Program(SourceFile("<t>", ""))
    checker = Checker(program, file_checks=False)
    (stmt,) = parse(f"cam c = {text}").statements
    assert isinstance(stmt, s.CamDecl)
    node = checker.lower(stmt.expr, "cam")
    assert node is not None, checker.bag.items
    return program.builder, node


def simplified(text: str) -> str:
    b, node = lower(text)
    out = simplify(b, node)
    verify(b, [out])
    return to_text(out)


#: One input per rule that only that rule (plus canonical ordering) can rewrite.
EXAMPLES = {
    "fold": ("A * (2 + 3)", "A * 5"),
    "mul_one": ("A * 1", "A"),
    "one_mul": ("1 * A", "A"),
    "add_zero": ("A + 0", "A"),
    "zero_add": ("0 + A", "A"),
    "sub_zero": ("A - 0", "A"),
    "div_one": ("A / 1", "A"),
    "pow_one": ("pow(A, 1)", "A"),
    "neg_neg": ("-(-A)", "A"),
    "relu_relu": ("relu(relu(A))", "relu(A)"),
    "relu_nonneg": ("relu(abs(A))", "abs(A)"),
    "abs_nonneg": ("abs(exp(A))", "exp(A)"),
    "abs_neg": ("abs(-A)", "abs(A)"),
    "idem": ("max(A, A)", "A"),
    "where_same": ("where(G, A, A)", "A"),
    "sub_sub": ("A - (A - G)", "G"),
    "commute": ("(G + A) * (A + G)", "(G + A) * (G + A)"),  # operands ordered by build order
}


def test_every_rule_has_an_example() -> None:
    assert set(EXAMPLES) == {r.name for r in RULES}


@pytest.mark.parametrize("rule", sorted(EXAMPLES))
def test_rule_example(rule: str) -> None:
    before, after = EXAMPLES[rule]
    assert simplified(before) == after


@pytest.mark.parametrize("rule", sorted(EXAMPLES))
def test_rule_alone_applies_to_its_example(rule: str) -> None:
    (r,) = [x for x in RULES if x.name == rule]
    b, node = lower(EXAMPLES[rule][0])
    assert any(r.apply(b, n) not in (None, n) for n in postorder([node]))


def test_rules_do_not_fire_where_they_should_not() -> None:
    assert simplified("A * 2") == "A * 2"
    assert simplified("A - G") == "A - G"
    assert simplified("relu(G)") == "relu(G)"
    assert simplified("abs(G)") == "abs(G)"
    assert simplified("max(A, G)") == "max(A, G)"
    assert simplified("pow(A, 2)") == "pow(A, 2)"
    assert simplified("A / 0") == "A / 0"
    assert simplified("0 - A") == "0 - A"


def test_fold_keeps_non_finite_results_unfolded() -> None:
    assert simplified("A * (1 / 0)") == "A * (1 / 0)"
    assert simplified("A + log(0)") == "A + log(0)"
    assert simplified("A * (2 * 3 - 1)") == "A * 5"


def test_nested_rewrites_reach_a_fixpoint() -> None:
    assert simplified("relu(relu(sum_c(1 * (G * 1 + 0) * A)))") == "relu(sum_c(G * A))"
    assert simplified("--(-(-A))") == "A"
    assert simplified("abs(-(-(-relu(A))))") == "relu(A)"


def test_simplify_is_idempotent_and_interned() -> None:
    b, node = lower("relu(sum_c((G * 1) * A + 0 * A))")
    once = simplify(b, node)
    assert simplify(b, once) is once
    assert simplify(b, node) is once


def test_commuted_expressions_meet_in_one_node() -> None:
    program = Program(SourceFile("<t>", ""))
    b, n1 = lower("relu(sum_c(G * A))", program)
    _, n2 = lower("relu(sum_c(A * G))", program)
    assert n1 is not n2
    assert simplify(b, n1) is simplify(b, n2)


def test_nonnegative() -> None:
    def nn(text: str) -> bool:
        return nonnegative(lower(text)[1])

    for yes in [
        "relu(A)",
        "abs(G)",
        "exp(A)",
        "sqrt(A)",
        "2",
        "relu(A) * abs(G)",
        "sum_c(relu(A))",
        "pow(A, 2)",
        "A > G",
        "max(relu(A), 0)",
        "upsample(relu(sum_c(A)))",
    ]:
        assert nn(yes), yes
    for no in ["A", "-relu(A)", "relu(A) - 1", "pow(A, 3)", "sum_c(A)", "log(relu(A))", "sign(A)"]:
        assert not nn(no), no


def test_rewrites_keep_the_node_type() -> None:
    # where(A, 0, 0) -> 0 would turn a [C, H, W] operand of sum_c into a scalar (found by hypothesis)
    assert simplified("relu(sum_c(where(A, 0, 0)))") == "relu(sum_c(where(A, 0, 0)))"
    assert simplified("relu(sum_c(where(A, G, G)))") == "relu(sum_c(G))"
