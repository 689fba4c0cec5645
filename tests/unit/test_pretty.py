"""The pretty-printer and `format_source`: canonical text, parentheses, numbers, comments."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from camlang.frontend import syntax as s
from camlang.frontend.parser import parse
from camlang.frontend.pretty import format_source, pretty_expr, pretty_module

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "examples").glob("*.cam")) + sorted((ROOT / "stdlib").glob("*.cam"))


def fmt(text: str) -> str:
    return format_source(text, parse(text))


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("a+b*c", "a + b * c"),
        ("(a+b)*c", "(a + b) * c"),
        ("a-(b-c)", "a - (b - c)"),
        ("(a-b)-c", "a - b - c"),
        ("a/(b*c)", "a / (b * c)"),
        ("(a<b)==c", "(a < b) == c"),
        ("a<(b==c)", "a < (b == c)"),
        ("-(a+b)", "-(a + b)"),
        ("-a*b", "-a * b"),
        ("a*-b", "a * (-b)"),
        ("a - -b", "a - (-b)"),
        ("--a", "-(-a)"),
        ("f( x ,y=  2 ,)", "f(x, y = 2)"),
        ("[ 1,2, ]", "[1, 2]"),
        ("d[ 3 ]", "d[3]"),
        ("1e-6 + 2E+3 + .5 + 3. + 1e999", "1e-6 + 2000.0 + 0.5 + 3.0 + 1e999"),
        ('"a\\"b\\\\c\\n"', '"a\\"b\\\\c\\n"'),
    ],
)
def test_expression_canonical_form(text: str, canonical: str) -> None:
    (stmt,) = parse(f"cam c = {text}").statements
    assert isinstance(stmt, s.CamDecl)
    assert pretty_expr(stmt.expr) == canonical
    (again,) = parse(f"cam c = {canonical}").statements
    assert again == stmt


def test_statements() -> None:
    text = (
        'import "x.cam" model  m=mlp([2,3]) at "l" data d=images("p/") '
        "grammar g{a->A|a*a b->G} synthesize s from g{model=m data=d} property p=nonnegative(c) "
        'evaluate[a,b]on m,d with[k] check p,q export a to "a.py" metric k=maximize mean(L)'
    )
    assert pretty_module(parse(text)) == (
        'import "x.cam"\n'
        'model m = mlp([2, 3]) at "l"\n'
        'data d = images("p/")\n'
        "grammar g {\n  a -> A | a * a\n  b -> G\n}\n"
        "synthesize s from g {\n  model = m\n  data = d\n}\n"
        "property p = nonnegative(c)\n"
        "evaluate [a, b] on m, d with [k]\n"
        "check p, q\n"
        'export a to "a.py"\n'
        "metric k = maximize mean(L)\n"
    )


def test_comments_and_blank_lines_are_kept() -> None:
    text = (
        "# header\n\n\n"
        "cam a = relu( sum_c(A) )   # trailing\n"
        "cam b = relu(sum_c(G))\n\n"
        "# about c\n"
        "cam c = relu(  # inside\n"
        "  sum_c(A))\n"
        "grammar g {\n  # in a block\n  a -> A\n}  # after the block\n"
        "# the end"
    )
    assert fmt(text) == (
        "# header\n\n"
        "cam a = relu(sum_c(A))  # trailing\n"
        "cam b = relu(sum_c(G))\n\n"
        "# about c\n"
        "cam c = relu(sum_c(A))  # inside\n"
        "# in a block\n# after the block\n"
        "grammar g {\n  a -> A\n}\n"
        "# the end\n"
    )


def test_a_trailing_comment_belongs_to_the_last_statement_on_its_line() -> None:
    assert fmt("cam a = A cam b = G  # about b\n") == "cam a = A\ncam b = G  # about b\n"


def test_hash_inside_strings_is_not_a_comment() -> None:
    assert fmt('model m = checkpoint("a#b.pt")  # real\n') == 'model m = checkpoint("a#b.pt")  # real\n'


def test_empty_files() -> None:
    assert fmt("") == "\n"
    assert fmt("# only\n\n") == "# only\n"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_files_format_idempotently_and_keep_comments(path: Path) -> None:
    text = path.read_text()
    once = fmt(text)
    assert fmt(once) == once
    assert parse(once) == parse(text)
    comments = re.findall(r"#[^\n]*", re.sub(r'"([^"\\\n]|\\.)*"', "", text))
    kept = re.findall(r"#[^\n]*", re.sub(r'"([^"\\\n]|\\.)*"', "", once))
    assert [c.strip() for c in comments] == [c.strip() for c in kept]


def test_stdlib_is_already_canonical() -> None:
    text = (ROOT / "stdlib" / "cams.cam").read_text()
    assert fmt(text) == text
