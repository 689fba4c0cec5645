"""Parsing for an editor: each statement is parsed once while its text stays the same.

`parse_with_recovery` splits a file that does not parse at the lines that open a statement and
parses each piece alone. An editor changes one statement at a time, so `PieceParser` always
parses piece by piece and keeps each piece's result, keyed by its text: after an edit only the
edited statement goes through lark again. The pieces and their diagnostics are those of
`parse_with_recovery` (a test compares both on every example, the stdlib and broken files).

A cached piece has its own `SourceFile` (the piece's text), so its spans stay valid wherever the
piece moves in the document; `Pieces.relocate` maps them to the document's offsets when a
feature reports them. Imported files are cached whole, by path and text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import lark

from camlang.frontend import syntax as s
from camlang.frontend.diagnostics import Diagnostic
from camlang.frontend.parser import _Builder, _diagnose, _lark, parse_with_recovery
from camlang.frontend.source import SourceFile, Span

#: The lines where `parse_with_recovery` splits a file (a statement keyword, then a name).
_STATEMENT_START = re.compile(
    r"^[ \t]*(?:" + "|".join(s.STATEMENT_KEYWORDS) + r")(?=[ \t]+[A-Za-z_\[\"])", re.MULTILINE
)


@dataclass(frozen=True, slots=True)
class _Parsed:
    """One parsed piece (or whole imported file): its source, statements and syntax errors."""

    source: SourceFile
    statements: tuple[s.Stmt, ...]
    diagnostics: tuple[Diagnostic, ...]


@dataclass(slots=True)
class Pieces:
    """Where each piece of the last parsed document starts, to map piece spans back."""

    document: SourceFile
    offsets: dict[int, int] = field(default_factory=dict)  # id(piece source) -> its offset

    def relocate(self, span: Span) -> Span:
        """`span` in the document's offsets (spans of other files are returned unchanged)."""
        at = self.offsets.get(id(span.source))
        if at is None:
            return span
        return Span(self.document, span.start + at, span.end + at)

    def diagnostic(self, d: Diagnostic) -> Diagnostic:
        """A diagnostic with its span in the document's offsets."""
        span = self.relocate(d.span)
        return d if span is d.span else Diagnostic(d.code, d.message, span, d.severity, d.hint, d.notes)


@dataclass(slots=True)
class PieceParser:
    """Parse results kept between the edits of one document."""

    pieces: dict[tuple[str, bool], _Parsed] = field(default_factory=dict)
    files: dict[tuple[Path, str], _Parsed] = field(default_factory=dict)

    def parse_document(self, source: SourceFile) -> tuple[s.Module, list[Diagnostic], Pieces]:
        """The document's statements (spans in their pieces) and syntax errors (in the document)."""
        text = source.text
        bounds = [m.start() for m in _STATEMENT_START.finditer(text)]
        if not bounds or bounds[0] != 0:
            bounds.insert(0, 0)
        bounds.append(len(text))
        kept: dict[tuple[str, bool], _Parsed] = {}
        pieces = Pieces(source)
        statements: list[s.Stmt] = []
        diagnostics: list[Diagnostic] = []
        for begin, end in zip(bounds, bounds[1:]):
            key = (text[begin:end], end == len(text))
            parsed = self.pieces.get(key)
            if parsed is None or key in kept:  # a repeated statement needs its own source (its own offset)
                parsed = _parse_piece(key[0], source, last=key[1])
            kept.setdefault(key, parsed)
            pieces.offsets[id(parsed.source)] = begin
            statements.extend(parsed.statements)
            diagnostics.extend(pieces.diagnostic(d) for d in parsed.diagnostics)
        self.pieces = kept  # forget pieces that are gone, so the cache never outgrows the document
        return s.Module(tuple(statements), Span(source, 0, len(text))), diagnostics, pieces

    def parse_file(self, source: SourceFile) -> tuple[SourceFile, s.Module, list[Diagnostic]]:
        """An imported file, parsed once per text; returns the source its spans point into."""
        if source.path is None:
            module, errors = parse_with_recovery(source)
            return source, module, errors
        key = (source.path, source.text)
        parsed = self.files.get(key)
        if parsed is None:
            module, errors = parse_with_recovery(source)
            parsed = _Parsed(source, module.statements, tuple(errors))
            self.files[key] = parsed
        module = s.Module(parsed.statements, Span(parsed.source, 0, len(parsed.source.text)))
        return parsed.source, module, list(parsed.diagnostics)


def _parse_piece(text: str, document: SourceFile, *, last: bool) -> _Parsed:
    """One piece, as `parse_with_recovery` parses it when a file has errors."""
    source = SourceFile(document.name, text, document.path)
    try:
        tree = _lark().parse(text)
    except lark.exceptions.UnexpectedInput as err:
        return _Parsed(source, (), (_diagnose(err, source, text, at_end_of_file=last),))
    return _Parsed(source, _Builder(source).transform(tree).statements, ())
