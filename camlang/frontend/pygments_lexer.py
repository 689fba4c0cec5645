"""A Pygments lexer for `.cam` files, on the grammar's own lexer (`camlang.frontend.parser.lex`).

Registered as the `pygments.lexers` entry point `cam` (aliases `cam`, `camlang`), so fenced
` ```cam ` blocks highlight in MkDocs, Sphinx and Jupyter once camlang is installed. Tokens come
from the lark lexer of `grammars/camlang.lark`; words are classified with the same tables as
the REPL's highlighter (keywords, op-table functions and terminals). Pygments ships with rich,
a dependency, so this adds none.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pygments.lexer import Lexer
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    _TokenType,
)

from camlang.frontend import syntax as s
from camlang.frontend.op_table import FUNCTIONS, TERMINALS
from camlang.frontend.parser import lex

_OPERATOR_KINDS = {"COMPOP", "ADDOP", "MULOP"}
_OPERATOR_TEXT = {"=", "->", "|", "-"}  # anonymous terminals of the grammar
_COMMENT = re.compile(r"#[^\n]*")


def _token(kind: str, text: str) -> _TokenType:
    if text in s.STATEMENT_KEYWORDS:
        return Keyword.Declaration
    if text in s.KEYWORDS or kind == "DIRECTION":
        return Keyword
    if kind == "NAME":
        if text in FUNCTIONS:
            return Name.Builtin
        if text in TERMINALS:
            return Name.Constant
        return Name
    if kind == "NUMBER":
        return Number
    if kind == "STRING":
        return String.Double
    if kind in _OPERATOR_KINDS or text in _OPERATOR_TEXT:
        return Operator
    return Punctuation


def _gap(at: int, text: str) -> Iterator[tuple[int, _TokenType, str]]:
    """Text between tokens: blanks and comments, or (after a lexing error) the rest as an error."""
    pos = 0
    for m in _COMMENT.finditer(text):
        yield from _blank_or_error(at + pos, text[pos : m.start()])
        yield at + m.start(), Comment.Single, m.group(0)
        pos = m.end()
    yield from _blank_or_error(at + pos, text[pos:])


def _blank_or_error(at: int, text: str) -> Iterator[tuple[int, _TokenType, str]]:
    stripped = text.lstrip()
    lead = len(text) - len(stripped)
    if lead:
        yield at, Text.Whitespace, text[:lead]
    if stripped:
        yield at + lead, Error, stripped


class CamLexer(Lexer):
    """Pygments lexer for camlang."""

    name = "camlang"
    aliases = ["cam", "camlang"]
    filenames = ["*.cam"]
    mimetypes = ["text/x-camlang"]

    def get_tokens_unprocessed(self, text: str) -> Iterator[tuple[int, _TokenType, str]]:  # type: ignore[override]
        pos = 0
        for tok in lex(text):
            if tok.start > pos:
                yield from _gap(pos, text[pos : tok.start])
            yield tok.start, _token(tok.type, tok.text), tok.text
            pos = tok.end
        if pos < len(text):
            yield from _gap(pos, text[pos:])
