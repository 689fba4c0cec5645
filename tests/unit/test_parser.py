"""The parser: every statement kind, precedence, literals, spans, and syntax errors in user terms."""

from __future__ import annotations

import re

import pytest

from camlang.frontend import syntax as s
from camlang.frontend.diagnostics import CompileError
from camlang.frontend.parser import lex, parse, parse_with_recovery
from camlang.frontend.source import SourceFile

#: lark's internal names must never reach a user.
LARK_NAMES = re.compile(
    r"\b(RPAR|LPAR|LSQB|RSQB|LBRACE|RBRACE|COMMA|EQUAL|VBAR|MINUS|COMPOP|ADDOP|MULOP|NAME|NUMBER|"
    r"STRING|DIRECTION)\b|__ANON|\$END"
)


def expr_of(text: str) -> s.Expr:
    (stmt,) = parse(f"cam c = {text}").statements
    assert isinstance(stmt, s.CamDecl)
    return stmt.expr


def syntax_errors(text: str) -> list[tuple[str, int, int, str, str | None]]:
    _, diags = parse_with_recovery(SourceFile("t.cam", text))
    return [(d.code, *d.span.line_col(), d.message, d.hint) for d in diags]


def N(v: int | float) -> s.Number:
    return s.Number(v)


def B(op: str, a: s.Expr, b: s.Expr) -> s.BinOp:
    return s.BinOp(op, a, b)  # type: ignore[arg-type]


# ---- statements --------------------------------------------------------------------------


def test_every_statement_kind() -> None:
    text = """
import "stdlib/cams.cam"
model m = checkpoint("m.pt", arch = "shapes_cnn") at "features.6"
model n = mlp([5, 6, 2])
data d = synthetic_shapes(count = 8)
cam c = relu(sum_c(A))
metric k = minimize mean(L)
grammar g {
  cam -> relu(sum_c(w * A))
  w   -> mean_hw(G) | sum_hw(G)
}
synthesize best from g { model = m data = d objective = k }
property p = equivalent(c, c)
evaluate [c, best] on m, d with [k]
check p, p
export c to "c.py"
"""
    stmts = parse(text).statements
    kinds = [type(st).__name__ for st in stmts]
    assert kinds == [
        "Import",
        "ModelDecl",
        "ModelDecl",
        "DataDecl",
        "CamDecl",
        "MetricDecl",
        "GrammarDecl",
        "SynthDecl",
        "PropertyDecl",
        "Evaluate",
        "Check",
        "Export",
    ]
    imp, m, n, d, c, k, g, syn, p, ev, ch, ex = stmts
    assert imp == s.Import(s.String("stdlib/cams.cam"))
    assert m == s.ModelDecl(
        s.Ident("m"),
        s.Call(
            s.Ident("checkpoint"), (s.String("m.pt"),), (s.KwArg(s.Ident("arch"), s.String("shapes_cnn")),)
        ),
        s.String("features.6"),
    )
    assert isinstance(n, s.ModelDecl) and n.layer is None
    assert n.source.args == (s.ListExpr((N(5), N(6), N(2))),)
    assert isinstance(d, s.DataDecl) and d.source.kwarg("count") == N(8)
    assert c == s.CamDecl(s.Ident("c"), s.Call(s.Ident("relu"), (s.Call(s.Ident("sum_c"), (s.Name("A"),)),)))
    assert isinstance(k, s.MetricDecl) and k.direction == "minimize"
    assert isinstance(g, s.GrammarDecl) and [p.lhs.name for p in g.productions] == ["cam", "w"]
    assert g.productions[1].alternatives == (
        s.Call(s.Ident("mean_hw"), (s.Name("G"),)),
        s.Call(s.Ident("sum_hw"), (s.Name("G"),)),
    )
    assert isinstance(syn, s.SynthDecl) and syn.grammar.name == "g"
    assert [st.key.name for st in syn.settings] == ["model", "data", "objective"]
    assert syn.setting("data") == s.Setting(s.Ident("data"), s.Name("d"))
    assert syn.setting("holdout") is None
    assert isinstance(p, s.PropertyDecl) and p.claim.func.name == "equivalent"
    assert ev == s.Evaluate((s.Ident("c"), s.Ident("best")), s.Ident("m"), s.Ident("d"), (s.Ident("k"),))
    assert ch == s.Check((s.Ident("p"), s.Ident("p")))
    assert ex == s.Export(s.Ident("c"), s.String("c.py"))


def test_empty_and_comment_only_files() -> None:
    assert parse("").statements == ()
    assert parse("# only a comment\n\n   \n# another").statements == ()


def test_statements_need_no_newlines() -> None:
    stmts = parse("cam a = A cam b = G check p").statements
    assert [type(x).__name__ for x in stmts] == ["CamDecl", "CamDecl", "Check"]


def test_keywords_as_keyword_argument_names() -> None:
    e = expr_of(
        "f(at = 1, data = 2, model = 3, cam = 4, metric = 5, check = 6, from = 7, to = 8, on = 9, with = 0)"
    )
    assert isinstance(e, s.Call)
    assert [kw.name.name for kw in e.kwargs] == [
        "at",
        "data",
        "model",
        "cam",
        "metric",
        "check",
        "from",
        "to",
        "on",
        "with",
    ]


def test_trailing_commas() -> None:
    assert expr_of("f(1, 2,)") == s.Call(s.Ident("f"), (N(1), N(2)))
    assert expr_of("[1,]") == s.ListExpr((N(1),))
    assert expr_of("[]") == s.ListExpr(())
    assert expr_of("f()") == s.Call(s.Ident("f"))
    (ev,) = parse("evaluate [a,] on m, d with [k,]").statements
    assert isinstance(ev, s.Evaluate) and [c.name for c in ev.cams] == ["a"]


# ---- expressions -----------------------------------------------------------------------------


def test_precedence_and_associativity() -> None:
    a, b, c = s.Name("a"), s.Name("b"), s.Name("c")
    assert expr_of("a + b * c") == B("+", a, B("*", b, c))
    assert expr_of("a * b + c") == B("+", B("*", a, b), c)
    assert expr_of("a - b - c") == B("-", B("-", a, b), c)
    assert expr_of("a - (b - c)") == B("-", a, B("-", b, c))
    assert expr_of("a / b / c") == B("/", B("/", a, b), c)
    assert expr_of("a + b < c * a") == B("<", B("+", a, b), B("*", c, a))
    assert expr_of("(a < b) == c") == B("==", B("<", a, b), c)
    assert expr_of("-a * b") == B("*", s.Neg(a), b)
    assert expr_of("a * -b") == B("*", a, s.Neg(b))
    assert expr_of("--a") == s.Neg(s.Neg(a))
    assert expr_of("-(a + b)") == s.Neg(B("+", a, b))
    assert expr_of("((a))") == a


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/"])
def test_every_binary_operator(op: str) -> None:
    assert expr_of(f"x {op} y") == B(op, s.Name("x"), s.Name("y"))


def test_literals() -> None:
    assert expr_of("3") == N(3) and isinstance(expr_of("3").value, int)  # type: ignore[union-attr]
    assert isinstance(expr_of("3.").value, float)  # type: ignore[union-attr]
    assert expr_of(".5") == N(0.5)
    assert expr_of("1e-6") == N(1e-6)
    assert expr_of("2E+3") == N(2000.0)
    assert expr_of("-2") == s.Neg(N(2))
    assert expr_of('"a\\"b\\\\c\\n\\t"') == s.String('a"b\\c\n\t')
    assert expr_of("none") == s.Const(None)
    assert expr_of("true") == s.Const(True)
    assert expr_of("false") == s.Const(False)
    assert expr_of("test[3]") == s.Index(s.Name("test"), N(3))
    assert expr_of("[1, [2, x]]") == s.ListExpr((N(1), s.ListExpr((N(2), s.Name("x")))))


def test_call_splits_positional_and_keyword_arguments() -> None:
    e = expr_of("blur(X, sigma = 2)")
    assert isinstance(e, s.Call)
    assert e.args == (s.Name("X"),)
    assert e.kwarg("sigma") == N(2) and e.kwarg("nope") is None


def test_spans_point_at_the_source() -> None:
    text = "# head\ncam  gc = relu(sum_c(mean_hw(G) * A))  # trailing\n"
    (stmt,) = parse(text, "f.cam").statements
    assert isinstance(stmt, s.CamDecl)
    assert stmt.name.span.text == "gc"
    assert stmt.name.span.location() == "f.cam:2:6"
    assert stmt.span.text == "cam  gc = relu(sum_c(mean_hw(G) * A))"
    assert stmt.expr.span.text == "relu(sum_c(mean_hw(G) * A))"
    call = stmt.expr
    assert isinstance(call, s.Call) and call.func.span.text == "relu"
    inner = call.args[0]
    assert isinstance(inner, s.Call)
    prod = inner.args[0]
    assert isinstance(prod, s.BinOp) and prod.span.text == "mean_hw(G) * A"
    assert prod.right.span.text == "A" and prod.right.span.line_col() == (2, 35)


def test_equality_ignores_spans() -> None:
    assert parse("cam a = A").statements == parse("\n\n  cam   a=A   ").statements


# ---- syntax errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pos", "needle"),
    [
        ("cam a =", (1, 7), "expected an expression after `=`"),
        ("cam a = relu(", (1, 13), "after `(`"),
        ("cam = relu(A)", (1, 5), "expected a name after `cam`, found `=`"),
        ("metric m = mean(L)", (1, 12), "expected `minimize` or `maximize` after `=`"),
        ("cam a = relu(A) )", (1, 17), "found `)`"),
        ("cam a = [1, 2", (1, 13), "expected `,` or `]` after `2`"),
        ("grammar g { a -> }", (1, 18), "expected an expression after `->`, found `}`"),
        ("synthesize s from g { model = }", (1, 31), "expected an expression after `=`, found `}`"),
        ("evaluate [a] on m d with [x]", (1, 19), "expected `,` after `m`, found `d`"),
        ("export a to b", (1, 13), "expected a string after `to`, found `b`"),
        ("cam a = b[]", (1, 11), "expected an expression after `[`"),
        ("import", (1, 6), "unexpected end of file: expected a string after `import`"),
        ("cam a = 1 < 2 < 3", (1, 15), "found `<`"),
    ],
)
def test_syntax_errors_in_user_terms(text: str, pos: tuple[int, int], needle: str) -> None:
    (err,) = syntax_errors(text)
    code, line, col, message, hint = err
    assert code == "E001"
    assert (line, col) == pos
    assert needle in message
    assert not LARK_NAMES.search(message), message
    assert hint is None or not LARK_NAMES.search(hint)


def test_hints_name_the_open_bracket() -> None:
    assert syntax_errors("cam a = relu(A")[0][4] == "a `(` is still open"
    assert syntax_errors("cam a = [1, 2")[0][4] == "a `[` is still open"
    assert syntax_errors("grammar g { a -> A ")[0][4] == "a `{` block is still open"
    # LALR merges lookaheads: no hint (or listed closer) for a bracket that is not open
    (err,) = syntax_errors("cam a = 1 < 2 < 3")
    assert "`)`" not in err[3] and "`}`" not in err[3] and "`|`" not in err[3]
    assert err[4] is not None and "do not chain" in err[4]


def test_lexical_errors() -> None:
    assert syntax_errors('cam a = "abc') == [
        ("E002", 1, 9, 'unterminated string: strings end with `"` on the same line', None)
    ]
    (err,) = syntax_errors("cam a = 'x'")
    assert err[:3] == ("E002", 1, 9) and err[4] == 'strings use double quotes: "..."'
    (err,) = syntax_errors("cam a = A ^ 2")
    assert err[:4] == ("E002", 1, 11, "unexpected character `^` after `A`")
    assert err[4] is not None and "pow(x, y)" in err[4]


def test_recovery_reports_every_broken_statement() -> None:
    text = "cam a = A\ncam b = \ncam c = relu(\ncam d = G\nmetric m = maximize\n"
    module, diags = parse_with_recovery(SourceFile("t.cam", text))
    assert [(d.code, *d.span.line_col()) for d in diags] == [("E001", 2, 7), ("E001", 3, 13), ("E001", 5, 19)]
    assert "unexpected end of statement" in diags[0].message
    assert "unexpected end of file" in diags[2].message
    # the good statements survive, with spans into the original text
    assert [st.name.name for st in module.statements if isinstance(st, s.CamDecl)] == ["a", "d"]
    last = module.statements[-1]
    assert last.span.location() == "t.cam:4:1"


def test_parse_raises_compile_error_with_all_diagnostics() -> None:
    with pytest.raises(CompileError) as info:
        parse("cam a =\ncam b = (\n", "x.cam")
    assert len(info.value.diagnostics) == 2
    assert all(d.span.source.name == "x.cam" for d in info.value.diagnostics)


def test_lex_for_highlighters() -> None:
    toks = list(lex('cam a = relu(A) # c\n"s" 1.5'))
    assert [(t.type, t.text) for t in toks] == [
        ("CAM", "cam"),
        ("NAME", "a"),
        ("EQUAL", "="),
        ("NAME", "relu"),
        ("LPAR", "("),
        ("NAME", "A"),
        ("RPAR", ")"),
        ("STRING", '"s"'),
        ("NUMBER", "1.5"),
    ]
    assert toks[1].start == 4 and toks[1].end == 5
    # a bad character ends lexing quietly (the highlighter shows the rest plain)
    assert [t.text for t in lex("cam a ^ b")] == ["cam", "a"]
