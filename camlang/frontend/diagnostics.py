"""Diagnostics: stable codes, severities, spans, hints, and rustc-style rendering.

    error[E301]: sum_c expects a tensor with channels, got Map[H, W]
      --> examples/bad.cam:4:14
       |
     4 | cam bad = sum_c(mean_c(A))
       |           ^~~~~~~~~~~~~~~~
       = hint: mean_c already removed the channel axis

User errors are collected in a `DiagnosticBag` and reported together; `CompileError`
carries them out of a stage. Internal errors are never `Diagnostic`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from camlang.frontend.source import NO_SPAN, Span

Severity = Literal["error", "warning", "note"]

#: Every diagnostic code with a one-line meaning (the docs list these).
CODES: dict[str, str] = {
    "E001": "syntax error",
    "E002": "unterminated string or bad character",
    "E101": "unknown name",
    "E102": "duplicate definition",
    "E103": "import failed",
    "E104": "import cycle",
    "E105": "reserved name",
    "E201": "wrong number of arguments",
    "E202": "wrong kind of argument",
    "E203": "unknown keyword argument",
    "E204": "missing argument",
    "E301": "wrong axes",
    "E302": "terminal used outside its context",
    "E303": "a cam must be a map [H, W]",
    "E304": "a metric must be a scalar",
    "E305": "channels of two layers mixed",
    "E306": "grids of two layers mixed",
    "E308": "`@` needs a layer name",
    "E401": "grammar error",
    "E402": "synthesize block error",
    "E501": "model error",
    "E502": "data error",
    "E503": "property error",
    "E601": "runtime error",
    "E602": "out of memory",
    "E700": "network not supported by the verifier",
    "E701": "network failed on the property's input shape",
    "E702": "bad property input (point, box, label or bound)",
    "E703": "unknown SMT back end",
    "E710": "malformed VNN-LIB file",
    "E711": "VNN-LIB property does not fit the network",
    "E712": "VNN-LIB file not found",
    "E820": "unknown concept name",
    "E821": "concept probe layer has no spatial or vector output",
    "E822": "VLM weights file not found",
    "E823": "concept set or monitor error",
    "E824": "a concept target needs a probe set fitted on the evaluated model",
    "E825": "metric reads class probabilities, which a concept target has not",
    "E900": "user error outside a source file",
    "W001": "referenced file does not exist",
    "W002": "redefinition",
    "W003": "`@` has no effect",
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One message for the user, tied to a span of source text."""

    code: str
    message: str
    span: Span = NO_SPAN
    severity: Severity = "error"
    hint: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


@dataclass(slots=True)
class DiagnosticBag:
    """Collects diagnostics across a stage so that all of them are reported together."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, span: Span = NO_SPAN, hint: str | None = None) -> None:
        self.items.append(Diagnostic(code, message, span, "error", hint))

    def warning(self, code: str, message: str, span: Span = NO_SPAN, hint: str | None = None) -> None:
        self.items.append(Diagnostic(code, message, span, "warning", hint))

    def add(self, diagnostic: Diagnostic) -> None:
        self.items.append(diagnostic)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.is_error]


class CompileError(Exception):
    """Raised by a stage when it found user errors; carries every diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("; ".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics


def render(diagnostic: Diagnostic, color: bool = False) -> str:
    """Render a diagnostic with its location, source line and caret underline."""
    sev = diagnostic.severity
    head = f"{sev}[{diagnostic.code}]: {diagnostic.message}"
    if color:
        tint = {"error": "\x1b[1;31m", "warning": "\x1b[1;33m", "note": "\x1b[1;36m"}[sev]
        head = f"{tint}{sev}[{diagnostic.code}]\x1b[0m\x1b[1m: {diagnostic.message}\x1b[0m"
    lines = [head]
    span = diagnostic.span
    if span is not NO_SPAN and span.source.name != "<builtin>":
        line, col = span.line_col()
        text = span.source.line_text(line)
        gutter = " " * len(str(line))
        lines.append(f"{gutter}--> {span.location()}")
        lines.append(f"{gutter} |")
        lines.append(f"{line} | {text.expandtabs(1)}")
        end_line, end_col = span.source.line_col(span.end)
        width = (end_col - col) if end_line == line else len(text) - col + 1
        width = max(1, width)
        underline = "^" + "~" * (width - 1)
        lines.append(f"{gutter} | {' ' * (col - 1)}{underline}")
        for note in diagnostic.notes:
            lines.append(f"{gutter} = note: {note}")
        if diagnostic.hint:
            lines.append(f"{gutter} = hint: {diagnostic.hint}")
    else:
        for note in diagnostic.notes:
            lines.append(f"  = note: {note}")
        if diagnostic.hint:
            lines.append(f"  = hint: {diagnostic.hint}")
    return "\n".join(lines)


def render_all(diagnostics: list[Diagnostic], color: bool = False) -> str:
    """Render several diagnostics, errors first in source order, then a count line."""
    ordered = sorted(diagnostics, key=lambda d: (d.span.source.name, d.span.start))
    parts = [render(d, color) for d in ordered]
    n_err = sum(d.is_error for d in diagnostics)
    n_warn = sum(d.severity == "warning" for d in diagnostics)
    if n_err or n_warn:
        summary = []
        if n_err:
            summary.append(f"{n_err} error{'s' if n_err != 1 else ''}")
        if n_warn:
            summary.append(f"{n_warn} warning{'s' if n_warn != 1 else ''}")
        parts.append(", ".join(summary))
    return "\n\n".join(parts)
