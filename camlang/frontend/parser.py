"""Parse camlang source into the AST (`camlang.frontend.syntax`).

This is the only module that sees lark `Tree`s. Syntax errors become `Diagnostic`s at the
offending token, phrased in user terms ("expected an expression after `=`"). After an error
the parser blanks the broken statement (keeping every character offset) and parses the rest,
so several syntax errors in one file are all reported.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import lark
from lark import Token, Transformer, v_args
from lark.tree import Meta

from camlang.frontend import syntax as s
from camlang.frontend.diagnostics import CompileError, Diagnostic
from camlang.frontend.source import SourceFile, Span
from camlang.paths import grammar_path

#: How lark's terminal names read to a user.
_TERMINAL_WORDS: dict[str, str] = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "DIRECTION": "`minimize` or `maximize`",
    "COMPOP": "a comparison",
    "ADDOP": "`+` or `-`",
    "MULOP": "`*` or `/`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "MINUS": "`-`",
    "VBAR": "`|`",
    "$END": "the end of the file",
    "NEXT_STATEMENT": "a new statement (this one is already complete)",
}
_EXPRESSION_START = {"NAME", "NUMBER", "STRING", "LPAR", "LSQB", "MINUS", "NONE", "TRUE", "FALSE"}
_STATEMENT_START = re.compile(
    r"^[ \t]*(?:" + "|".join(s.STATEMENT_KEYWORDS) + r")(?=[ \t]+[A-Za-z_\[\"])", re.MULTILINE
)


@functools.cache
def _lark() -> lark.Lark:
    text = grammar_path().read_text()
    return lark.Lark(
        text, parser="lalr", propagate_positions=True, maybe_placeholders=True, cache=_parser_cache(text)
    )


def _parser_cache(grammar: str) -> str | bool:
    """A per-user file for lark's built parse tables (building them takes most of `camlang check`).

    It lives in the user's own cache folder (never a shared temporary folder), named by the
    grammar's and lark's versions; lark re-checks the grammar's hash when it loads the file.
    Without a writable cache folder the tables are simply built each time.
    """
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "camlang"
    try:
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return False
    digest = hashlib.sha256(f"{lark.__version__}\n{grammar}".encode()).hexdigest()[:16]
    return str(base / f"parser-{digest}.lark")


@functools.cache
def _lexer_lark() -> lark.Lark:
    return lark.Lark(grammar_path().read_text(), parser="lalr", lexer="basic")


@dataclass(frozen=True, slots=True)
class Lexeme:
    """A token for highlighters: its lark type, text and offsets."""

    type: str
    text: str
    start: int
    end: int


def lex(text: str) -> Iterator[Lexeme]:
    """Tokens of `text` for syntax highlighting; stops quietly at the first bad character."""
    try:
        for tok in _lexer_lark().lex(text):
            yield Lexeme(tok.type, str(tok), tok.start_pos or 0, tok.end_pos or 0)
    except lark.exceptions.LarkError:
        return


def parse(text: str, name: str = "<input>", path: Path | None = None) -> s.Module:
    """Parse a whole file; raise `CompileError` with every syntax diagnostic found."""
    module, diagnostics = parse_with_recovery(SourceFile(name, text, path))
    if diagnostics:
        raise CompileError(diagnostics)
    return module


def parse_source(source: SourceFile) -> s.Module:
    """Like `parse`, for an existing `SourceFile`."""
    module, diagnostics = parse_with_recovery(source)
    if diagnostics:
        raise CompileError(diagnostics)
    return module


def parse_with_recovery(source: SourceFile) -> tuple[s.Module, list[Diagnostic]]:
    """Parse a file; on syntax errors, parse statement by statement so all errors are found.

    Returns the statements that did parse (with spans into the original text) and the
    syntax diagnostics. Statements are split at lines that start with a statement keyword;
    each piece is parsed with everything else blanked, so offsets stay exact.
    """
    text = source.text
    try:
        return _Builder(source).transform(_lark().parse(text)), []
    except lark.exceptions.UnexpectedInput:
        pass
    diagnostics: list[Diagnostic] = []
    statements: list[s.Stmt] = []
    bounds = [m.start() for m in _STATEMENT_START.finditer(text)]
    if not bounds or bounds[0] != 0:
        bounds.insert(0, 0)
    bounds.append(len(text))
    for begin, end in zip(bounds, bounds[1:]):
        piece = re.sub(r"[^\n]", " ", text[:begin]) + text[begin:end]
        try:
            tree = _lark().parse(piece)
        except lark.exceptions.UnexpectedInput as err:
            last = end == len(text)
            diagnostics.append(_diagnose(err, source, piece, at_end_of_file=last))
            continue
        statements.extend(_Builder(source).transform(tree).statements)
    return s.Module(tuple(statements), Span(source, 0, len(text))), diagnostics


def _describe_expected(expected: set[str]) -> str:
    names = set(expected)
    words: list[str] = []
    if names & _EXPRESSION_START and len(names & _EXPRESSION_START) >= 3:
        words.append("an expression")
        names -= _EXPRESSION_START
    for name in sorted(names):
        if name in _TERMINAL_WORDS:
            words.append(_TERMINAL_WORDS[name])
        elif re.fullmatch(r"[A-Z_]+", name) and name.isupper():
            words.append(f"`{name.lower()}`")
        else:
            words.append(f"`{name}`")
    words = sorted(set(words), key=lambda w: (w != "an expression", w))
    if not words:
        return "something else"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


_PREV_TOKEN = re.compile(r"(\"[^\"\n]*\"|[A-Za-z_][A-Za-z_0-9]*|\d[\w.]*|->|==|!=|<=|>=|\S)\s*$")


def _previous_token(text: str, pos: int) -> str | None:
    before = re.sub(r"#[^\n]*", "", text[:pos])
    m = _PREV_TOKEN.search(before)
    return m.group(1) if m else None


def _diagnose(
    err: lark.exceptions.UnexpectedInput, source: SourceFile, text: str, at_end_of_file: bool = True
) -> Diagnostic:
    """Turn a lark error into a diagnostic at the offending token, in user terms."""
    if isinstance(err, lark.exceptions.UnexpectedToken):
        token = err.token
        pos = token.start_pos if token.start_pos is not None else len(text)
        expected = {e for e in err.expected if not e.startswith("__")}
        if "NAME" in expected:  # keywords listed only because they may name keyword arguments
            expected = {e for e in expected if e.lower() not in s.KEYWORDS}
        # LALR merges lookaheads, so closers of brackets that are not open get listed too.
        top = _innermost_bracket(text, pos if token.type != "$END" else len(text))
        impossible = {closer for closer, opener in _CLOSERS.items() if opener != top}
        if expected - impossible:
            expected -= impossible
        starters = {e for e in expected if e.lower() in s.STATEMENT_KEYWORDS} | {"$END"}
        if expected - starters:  # a statement could end here, but something else is needed
            expected -= starters
        elif expected:
            expected = {"NEXT_STATEMENT"}
        wanted = _describe_expected(expected)
        if token.type == "$END":
            pos = _end_of_code(text)
        prev = _previous_token(text, pos)
        where = f" after `{prev}`" if prev else ""
        if token.type == "$END":
            ending = "file" if at_end_of_file else "statement"
            msg = f"unexpected end of {ending}: expected {wanted}{where}"
            span = Span(source, max(0, pos - 1), pos)
        else:
            shown = str(token)
            msg = f"expected {wanted}{where}, found `{shown}`"
            span = Span(source, pos, min(len(source.text), pos + max(1, len(shown))))
        return Diagnostic("E001", msg, span, hint=_hint_for(expected, token, prev, top))
    if isinstance(err, lark.exceptions.UnexpectedCharacters):
        pos = err.pos_in_stream or 0
        ch = text[pos] if pos < len(text) else ""
        if ch == '"':
            msg = 'unterminated string: strings end with `"` on the same line'
            return Diagnostic("E002", msg, Span(source, pos, pos + 1))
        prev = _previous_token(text, pos)
        where = f" after `{prev}`" if prev else ""
        hint = None
        if ch == "'":
            hint = 'strings use double quotes: "..."'
        elif ch in "^%@$`;&!":
            hint = "camlang has no such operator; use pow(x, y) for powers"
        span = Span(source, pos, min(len(source.text), pos + 1))
        return Diagnostic("E002", f"unexpected character `{ch}`{where}", span, hint=hint)
    pos = min(getattr(err, "pos_in_stream", 0) or 0, len(source.text))
    return Diagnostic("E001", "syntax error", Span(source, pos, pos))


def _hint_for(expected: set[str], token: Token, prev: str | None, top: str | None) -> str | None:
    found = str(token)
    if found in s.KEYWORDS and "NAME" in expected:
        return f"`{found}` is a keyword and cannot be used as a name here"
    if prev == "=" and found in {")", "]", "}", ","}:
        return "give a value after `=`"
    if token.type == "COMPOP" and "COMPOP" not in expected:
        return "comparisons do not chain: write (a < b) * (b < c)"
    if top == "(" and "RPAR" in expected and found != ")":
        return "a `(` is still open"
    if top == "[" and "RSQB" in expected and found != "]":
        return "a `[` is still open"
    if top == "{" and "RBRACE" in expected:
        return "a `{` block is still open"
    return None


#: Each closing bracket terminal and the opener it needs to be innermost.
_CLOSERS = {"RPAR": "(", "RSQB": "[", "RBRACE": "{", "VBAR": "{"}
_BRACKET_TEXT = re.compile(r'"([^"\\\n]|\\.)*"?|#[^\n]*|[()\[\]{}]')


def _end_of_code(text: str) -> int:
    """The offset just after the last code character: trailing blanks and comments skipped."""
    end = len(text)
    while True:
        stripped = text[:end].rstrip()
        line_start = stripped.rfind("\n") + 1
        line = re.sub(r'"([^"\\\n]|\\.)*"', lambda m: " " * len(m.group(0)), stripped[line_start:])
        hash_at = line.find("#")
        if hash_at < 0:
            return len(stripped)
        end = line_start + hash_at


def _innermost_bracket(text: str, pos: int) -> str | None:
    """The innermost bracket still open at `pos` (strings and comments skipped), or None."""
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for m in _BRACKET_TEXT.finditer(text, 0, pos):
        ch = m.group(0)
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and stack and stack[-1] == pairs[ch]:
            stack.pop()
    return stack[-1] if stack else None


def _span(source: SourceFile, meta: Meta) -> Span:
    if getattr(meta, "empty", True):
        return Span(source, 0, 0)
    return Span(source, meta.start_pos, meta.end_pos)


def _tok_span(source: SourceFile, tok: Token) -> Span:
    return Span(source, tok.start_pos or 0, tok.end_pos or 0)


def _unquote(raw: str) -> str:
    body = raw[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


#: The grammar's binary operators, by their text (a closed set: the grammar admits no others).
_BINOPS: dict[str, s.BinOpSymbol] = {op: op for op in get_args(s.BinOpSymbol)}


def _binop_symbol(tok: Token) -> s.BinOpSymbol:
    return _BINOPS[str(tok)]


#: A tree node's children (the alias keeps the `list` rule method from shadowing the builtin in annotations).
_Children = list[Any]


@v_args(meta=True)
class _Builder(Transformer[Token, s.Module]):
    """Tree -> AST. Purely structural: semantic checks happen in `camlang.frontend.check`."""

    def __init__(self, source: SourceFile) -> None:
        super().__init__()
        self.src = source

    def _id(self, tok: Token) -> s.Ident:
        return s.Ident(str(tok), _tok_span(self.src, tok))

    def _str(self, tok: Token) -> s.String:
        return s.String(_unquote(str(tok)), _tok_span(self.src, tok))

    def start(self, meta: Meta, children: list[Any]) -> s.Module:
        return s.Module(tuple(children), Span(self.src, 0, len(self.src.text)))

    def import_stmt(self, meta: Meta, c: _Children) -> s.Import:
        return s.Import(self._str(c[0]), _span(self.src, meta))

    def layer_list(self, meta: Meta, c: _Children) -> tuple[s.String, ...]:
        return tuple(self._str(t) for t in c)

    def at_clause(self, meta: Meta, c: _Children) -> tuple[tuple[s.String, ...], tuple[s.Call, ...]]:
        return c[0], tuple(c[1:])

    def model_decl(self, meta: Meta, c: _Children) -> s.ModelDecl:
        if len(c) <= 2:
            return s.ModelDecl(self._id(c[0]), c[1], None, _span(self.src, meta))
        layers, options = c[2]
        return s.ModelDecl(self._id(c[0]), c[1], layers[0], _span(self.src, meta), layers[1:], options)

    def data_decl(self, meta: Meta, c: _Children) -> s.DataDecl:
        return s.DataDecl(self._id(c[0]), c[1], _span(self.src, meta))

    def cam_decl(self, meta: Meta, c: _Children) -> s.CamDecl:
        return s.CamDecl(self._id(c[0]), c[1], _span(self.src, meta))

    def metric_decl(self, meta: Meta, c: _Children) -> s.MetricDecl:
        direction: s.Direction = "minimize" if str(c[1]) == "minimize" else "maximize"
        return s.MetricDecl(self._id(c[0]), direction, c[2], _span(self.src, meta))

    def grammar_decl(self, meta: Meta, c: _Children) -> s.GrammarDecl:
        return s.GrammarDecl(self._id(c[0]), tuple(c[1:]), _span(self.src, meta))

    def production(self, meta: Meta, c: _Children) -> s.Production:
        return s.Production(self._id(c[0]), tuple(c[1:]), _span(self.src, meta))

    def synth_decl(self, meta: Meta, c: _Children) -> s.SynthDecl:
        return s.SynthDecl(self._id(c[0]), self._id(c[1]), tuple(c[2:]), _span(self.src, meta))

    def setting(self, meta: Meta, c: _Children) -> s.Setting:
        return s.Setting(c[0], c[1], _span(self.src, meta))

    def argname(self, meta: Meta, c: _Children) -> s.Ident:
        return self._id(c[0])

    def property_decl(self, meta: Meta, c: _Children) -> s.PropertyDecl:
        return s.PropertyDecl(self._id(c[0]), c[1], _span(self.src, meta))

    def evaluate_stmt(self, meta: Meta, c: _Children) -> s.Evaluate:
        return s.Evaluate(c[0], self._id(c[1]), self._id(c[2]), c[3], _span(self.src, meta), c[4])

    def concept_target(self, meta: Meta, c: _Children) -> s.ConceptTarget:
        return s.ConceptTarget(self._id(c[0]), self._id(c[1]), _span(self.src, meta))

    def check_stmt(self, meta: Meta, c: _Children) -> s.Check:
        return s.Check(tuple(self._id(t) for t in c), _span(self.src, meta))

    def export_stmt(self, meta: Meta, c: _Children) -> s.Export:
        return s.Export(self._id(c[0]), self._str(c[1]), _span(self.src, meta))

    def concepts_decl(self, meta: Meta, c: _Children) -> s.ConceptsDecl:
        return s.ConceptsDecl(self._id(c[0]), c[1], _span(self.src, meta))

    def monitor_decl(self, meta: Meta, c: _Children) -> s.MonitorDecl:
        return s.MonitorDecl(self._id(c[0]), c[1], _span(self.src, meta))

    def heatmaps_stmt(self, meta: Meta, c: _Children) -> s.Heatmaps:
        return s.Heatmaps(self._id(c[0]), self._id(c[1]), self._id(c[2]), _span(self.src, meta))

    def monitor_stmt(self, meta: Meta, c: _Children) -> s.Watch:
        return s.Watch(self._id(c[0]), self._id(c[1]), _span(self.src, meta))

    def name_list(self, meta: Meta, c: _Children) -> tuple[s.Ident, ...]:
        return tuple(self._id(t) for t in c if t is not None)

    # ---- expressions
    def number(self, meta: Meta, c: _Children) -> s.Number:
        raw = str(c[0])
        value: int | float = int(raw) if re.fullmatch(r"\d+", raw) else float(raw)
        return s.Number(value, _tok_span(self.src, c[0]))

    def string(self, meta: Meta, c: _Children) -> s.String:
        return self._str(c[0])

    def none(self, meta: Meta, c: _Children) -> s.Const:
        return s.Const(None, _span(self.src, meta))

    def true(self, meta: Meta, c: _Children) -> s.Const:
        return s.Const(True, _span(self.src, meta))

    def false(self, meta: Meta, c: _Children) -> s.Const:
        return s.Const(False, _span(self.src, meta))

    def name(self, meta: Meta, c: _Children) -> s.Name:
        return s.Name(str(c[0]), _tok_span(self.src, c[0]))

    def index(self, meta: Meta, c: _Children) -> s.Index:
        return s.Index(s.Name(str(c[0]), _tok_span(self.src, c[0])), c[1], _span(self.src, meta))

    def list(self, meta: Meta, c: _Children) -> s.ListExpr:
        return s.ListExpr(tuple(x for x in c if x is not None), _span(self.src, meta))

    def call(self, meta: Meta, c: _Children) -> s.Call:
        func = self._id(c[0])
        args: list[s.Expr] = []
        kwargs: list[s.KwArg] = []
        for a in c[1:]:
            if a is None:
                continue
            if isinstance(a, s.KwArg):
                kwargs.append(a)
            else:
                args.append(a)
        return s.Call(func, tuple(args), tuple(kwargs), _span(self.src, meta))

    def kwarg(self, meta: Meta, c: _Children) -> s.KwArg:
        return s.KwArg(c[0], c[1], _span(self.src, meta))

    def binop(self, meta: Meta, c: _Children) -> s.BinOp:
        return s.BinOp(_binop_symbol(c[1]), c[0], c[2], _span(self.src, meta))

    def neg(self, meta: Meta, c: _Children) -> s.Neg:
        return s.Neg(c[0], _span(self.src, meta))

    def at_layer(self, meta: Meta, c: _Children) -> s.AtLayer:
        tok = c[1]
        layer = self._str(tok) if tok.type == "STRING" else s.Name(str(tok), _tok_span(self.src, tok))
        return s.AtLayer(c[0], layer, _span(self.src, meta))
