"""Source files and spans.

A `Span` is a half-open character range `[start, end)` in one `SourceFile`. Spans never
take part in AST equality (`field(compare=False)` in `camlang.frontend.syntax`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SourceFile:
    """The text of one `.cam` file (or one REPL input) and its display name."""

    name: str
    text: str
    path: Path | None = None
    _line_starts: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        starts = [0] + [i + 1 for i, ch in enumerate(self.text) if ch == "\n"]
        object.__setattr__(self, "_line_starts", tuple(starts))

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset, clamped into the text."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        start = self._line_starts[line - 1]
        end = self._line_starts[line] - 1 if line < len(self._line_starts) else len(self.text)
        return self.text[start:end]

    @property
    def line_count(self) -> int:
        return len(self._line_starts)


@dataclass(frozen=True, slots=True)
class Span:
    """A character range `[start, end)` in a source file."""

    source: SourceFile
    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end <= len(self.source.text):
            raise ValueError(f"span {self.start}..{self.end} outside {self.source.name}")

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]

    def line_col(self) -> tuple[int, int]:
        return self.source.line_col(self.start)

    def location(self) -> str:
        """`file:line:col`, as editors expect."""
        line, col = self.line_col()
        return f"{self.source.name}:{line}:{col}"

    def join(self, other: Span) -> Span:
        """The smallest span covering both (same file)."""
        return Span(self.source, min(self.start, other.start), max(self.end, other.end))


_BUILTIN = SourceFile("<builtin>", "")

#: A span for things that have no source text (defaults, programmatic IR).
NO_SPAN = Span(_BUILTIN, 0, 0)
