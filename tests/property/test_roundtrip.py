"""Round trips: parse(pretty(ast)) == ast for generated ASTs, and `format_source` is idempotent and
keeps every comment."""

from __future__ import annotations

import math
import re
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from camlang.frontend import syntax as s
from camlang.frontend.parser import parse
from camlang.frontend.pretty import format_source, pretty_expr, pretty_module

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "examples").glob("*.cam")) + sorted((ROOT / "stdlib").glob("*.cam"))

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True).filter(lambda n: n not in s.KEYWORDS)
idents = names.map(s.Ident)
argnames = st.one_of(
    idents,
    st.sampled_from(["at", "data", "model", "cam", "metric", "check", "from", "to", "on", "with"]).map(
        s.Ident
    ),
)
numbers = st.one_of(
    st.integers(0, 10**20),
    st.floats(min_value=0, allow_nan=False),  # includes inf, printed as 1e999
).map(s.Number)
strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8).map(s.String)
atoms = st.one_of(numbers, strings, st.sampled_from([None, True, False]).map(s.Const), names.map(s.Name))
OPS = ["+", "-", "*", "/", "==", "!=", "<", "<=", ">", ">="]


def _compound(inner: st.SearchStrategy[s.Expr]) -> st.SearchStrategy[s.Expr]:
    return st.one_of(
        st.builds(s.BinOp, st.sampled_from(OPS), inner, inner),
        st.builds(s.Neg, inner),
        st.builds(s.AtLayer, inner, st.one_of(strings, names.map(s.Name))),
        st.builds(
            s.Call,
            idents,
            st.lists(inner, max_size=3).map(tuple),
            st.lists(st.builds(s.KwArg, argnames, inner), max_size=2).map(tuple),
        ),
        st.builds(s.Index, names.map(s.Name), inner),
        st.builds(s.ListExpr, st.lists(inner, max_size=3).map(tuple)),
    )


exprs = st.recursive(atoms, _compound, max_leaves=16)
calls = st.builds(
    s.Call,
    idents,
    st.lists(exprs, max_size=2).map(tuple),
    st.lists(st.builds(s.KwArg, argnames, exprs), max_size=2).map(tuple),
)
name_lists = st.lists(idents, min_size=1, max_size=3).map(tuple)
statements = st.one_of(
    st.builds(s.Import, strings),
    st.builds(s.ModelDecl, idents, calls, st.none() | strings),
    st.builds(s.DataDecl, idents, calls),
    st.builds(s.CamDecl, idents, exprs),
    st.builds(s.MetricDecl, idents, st.sampled_from(["minimize", "maximize"]), exprs),
    st.builds(
        s.GrammarDecl,
        idents,
        st.lists(
            st.builds(s.Production, idents, st.lists(exprs, min_size=1, max_size=3).map(tuple)), max_size=3
        ).map(tuple),
    ),
    st.builds(
        s.SynthDecl, idents, idents, st.lists(st.builds(s.Setting, argnames, exprs), max_size=3).map(tuple)
    ),
    st.builds(s.PropertyDecl, idents, calls),
    st.builds(s.Evaluate, name_lists, idents, idents, name_lists),
    st.builds(s.Check, name_lists),
    st.builds(s.Export, idents, strings),
)
modules = st.lists(statements, max_size=6).map(lambda xs: s.Module(tuple(xs)))


def _no_nan(e: s.Expr) -> bool:
    return not (isinstance(e, s.Number) and isinstance(e.value, float) and math.isnan(e.value))


@settings(max_examples=400)
@given(exprs)
@example(s.BinOp("-", s.Name("a"), s.Neg(s.Number(1))))
@example(s.BinOp("<", s.BinOp("<", s.Name("a"), s.Name("b")), s.Name("c")))
@example(s.Neg(s.Neg(s.BinOp("*", s.Number(1e-6), s.Number(1e20)))))
@example(s.AtLayer(s.AtLayer(s.Neg(s.Number(1)), s.String("a")), s.Name("l")))
@example(s.String('a"b\\c\nd\te#'))
def test_expression_round_trip(expr: s.Expr) -> None:
    text = pretty_expr(expr)
    (stmt,) = parse(f"cam c = {text}").statements
    assert isinstance(stmt, s.CamDecl)
    assert stmt.expr == expr, text
    assert pretty_expr(stmt.expr) == text


@settings(max_examples=200)
@given(modules)
def test_module_round_trip(module: s.Module) -> None:
    text = pretty_module(module)
    again = parse(text)
    assert again == module, text
    assert pretty_module(again) == text
    assert format_source(text, again) == (text or "\n")


@settings(max_examples=200)
@given(
    modules,
    st.lists(
        st.tuples(
            st.integers(0, 10**6),
            st.sampled_from(["own", "trail", "blank"]),
            st.from_regex(r"[a-z ]{0,6}", fullmatch=True),
        ),
        max_size=6,
    ),
)
def test_format_source_keeps_comments_and_is_idempotent(
    module: s.Module, edits: list[tuple[int, str, str]]
) -> None:
    lines = pretty_module(module).split("\n")
    comments = []
    for pos, kind, body in edits:
        i = pos % (len(lines) + 1)
        comment = f"# {len(comments)} {body}".rstrip()
        if kind == "own":
            lines.insert(i, "   " + comment)
            comments.append(comment)
        elif kind == "trail" and i < len(lines) and lines[i].strip() and "#" not in lines[i]:
            lines[i] = lines[i] + "   " + comment
            comments.append(comment)
        elif kind == "blank":
            lines.insert(i, "")
    text = "\n".join(lines)
    parsed = parse(text)
    once = format_source(text, parsed)
    assert parse(once) == parsed == module
    assert format_source(once, parse(once)) == once
    kept = re.findall(r"#[^\n]*", re.sub(r'"([^"\\\n]|\\.)*"', "", once))
    assert sorted(c.strip() for c in kept) == sorted(comments)


def test_shipped_files_are_fixpoints_of_fmt() -> None:
    for path in SHIPPED:
        text = path.read_text()
        once = format_source(text, parse(text))
        assert format_source(once, parse(once)) == once, path.name
        assert parse(once) == parse(text)
