"""Spans (character offsets) to LSP positions (lines and UTF-16 code units) and back."""

from __future__ import annotations

from lsprotocol import types as lsp

from camlang.frontend.source import SourceFile, Span


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def position(source: SourceFile, offset: int) -> lsp.Position:
    """The LSP position of character `offset` (0-based line, UTF-16 column)."""
    line, col = source.line_col(offset)
    return lsp.Position(line - 1, _utf16_len(source.line_text(line)[: col - 1]))


def span_range(span: Span) -> lsp.Range:
    """The LSP range of a span."""
    return lsp.Range(position(span.source, span.start), position(span.source, span.end))


def offset(text: str, pos: lsp.Position) -> int:
    """The character offset of an LSP position in `text` (clamped to the line and the text)."""
    lines = text.split("\n")
    if pos.line >= len(lines):
        return len(text)
    start = sum(len(line) + 1 for line in lines[: pos.line])
    line = lines[pos.line]
    units = 0
    for i, ch in enumerate(line):
        if units >= pos.character:
            return start + i
        units += 2 if ord(ch) > 0xFFFF else 1
    return start + len(line)
