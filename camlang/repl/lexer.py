"""Syntax highlighting from the grammar's own lexer (`camlang.frontend.parser.lex`).

`highlight(text, names)` is a pure function from the input to `(style class, text)` fragments;
`CamLexer` splits them into lines for prompt_toolkit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container

from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.lexers import Lexer

from camlang.frontend import syntax as s
from camlang.frontend.op_table import FUNCTIONS, TERMINALS
from camlang.frontend.parser import lex

Fragments = list[tuple[str, str]]

#: Commands whose argument is an expression (highlighted like code).
EXPRESSION_COMMANDS = ("type", "ir", "simplify", "t")
_COMMAND = re.compile(r"^(\s*:[A-Za-z?]*)(.*)$", re.DOTALL)


def _token_class(kind: str, text: str, names: Container[str]) -> str:
    if text in s.KEYWORDS or kind == "DIRECTION":
        return "class:keyword"
    if kind == "NAME":
        if text in FUNCTIONS:
            return "class:op"
        if text in TERMINALS:
            return "class:terminal"
        return "class:declared" if text in names else "class:name"
    if kind == "NUMBER":
        return "class:number"
    if kind == "STRING":
        return "class:string"
    return "class:punctuation"


def _gap(text: str, out: Fragments) -> None:
    """Text between tokens: blanks and comments, or (after a lexing error) bad input."""
    pos = 0
    for m in re.finditer(r"#[^\n]*", text):
        if m.start() > pos:
            _blank_or_error(text[pos : m.start()], out)
        out.append(("class:comment", m.group(0)))
        pos = m.end()
    if pos < len(text):
        _blank_or_error(text[pos:], out)


def _blank_or_error(text: str, out: Fragments) -> None:
    stripped = text.lstrip()
    lead = text[: len(text) - len(stripped)]
    if lead:
        out.append(("", lead))
    if stripped:
        out.append(("class:error", stripped))


def highlight(text: str, names: Container[str] = ()) -> Fragments:
    """Fragments covering `text` exactly, classified by the grammar's lexer (`names`: declared)."""
    m = _COMMAND.match(text)
    if m is not None:
        head, rest = m.group(1), m.group(2)
        out: Fragments = [("class:command", head)]
        if head.strip()[1:] in EXPRESSION_COMMANDS:
            out += highlight(rest, names)
        elif rest:
            out.append(("class:argument", rest))
        return out
    out = []
    pos = 0
    for tok in lex(text):
        if tok.start > pos:
            _gap(text[pos : tok.start], out)
        out.append((_token_class(tok.type, tok.text, names), tok.text))
        pos = tok.end
    if pos < len(text):
        _gap(text[pos:], out)
    return out


def split_lines(fragments: Fragments) -> list[Fragments]:
    """The fragments of each line (newlines removed)."""
    lines: list[Fragments] = [[]]
    for style, text in fragments:
        parts = text.split("\n")
        for i, part in enumerate(parts):
            if i:
                lines.append([])
            if part:
                lines[-1].append((style, part))
    return lines


class CamLexer(Lexer):
    """prompt_toolkit lexer; `names` returns the session's declared names when called."""

    def __init__(self, names: Callable[[], Container[str]]) -> None:
        self.names = names

    def lex_document(self, document: Document) -> Callable[[int], StyleAndTextTuples]:
        lines = split_lines(highlight(document.text, self.names()))

        def get_line(lineno: int) -> StyleAndTextTuples:
            return list(lines[lineno]) if 0 <= lineno < len(lines) else []

        return get_line
