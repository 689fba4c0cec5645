"""The editor features as pure functions from an `Analysis` to LSP records.

The server (`camlang.lsp.server`) only keeps documents and calls these, so each can be tested
without a client.
"""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp

from camlang.frontend import syntax as s
from camlang.frontend.check.imports import find_import
from camlang.frontend.diagnostics import Diagnostic
from camlang.frontend.parser import parse_with_recovery
from camlang.frontend.pretty import format_source
from camlang.frontend.source import NO_SPAN, SourceFile, Span
from camlang.lsp.analysis import Analysis, Occurrence
from camlang.lsp.completion import Candidate, complete
from camlang.lsp.describe import (
    SOURCE_TABLES,
    arg_doc,
    arg_text,
    describe_setting,
    describe_source,
    hover_markdown,
)
from camlang.lsp.positions import offset, position, span_range

_SEVERITY = {
    "error": lsp.DiagnosticSeverity.Error,
    "warning": lsp.DiagnosticSeverity.Warning,
    "note": lsp.DiagnosticSeverity.Information,
}

_COMPLETION_KIND = {
    "keyword": lsp.CompletionItemKind.Keyword,
    "declaration": lsp.CompletionItemKind.Variable,
    "op": lsp.CompletionItemKind.Function,
    "terminal": lsp.CompletionItemKind.Constant,
    "source": lsp.CompletionItemKind.Class,
    "argument": lsp.CompletionItemKind.Property,
    "layer": lsp.CompletionItemKind.Field,
    "file": lsp.CompletionItemKind.File,
}

_SYMBOL_KIND = {
    s.ModelDecl: lsp.SymbolKind.Class,
    s.DataDecl: lsp.SymbolKind.Array,
    s.CamDecl: lsp.SymbolKind.Function,
    s.MetricDecl: lsp.SymbolKind.Method,
    s.GrammarDecl: lsp.SymbolKind.Namespace,
    s.SynthDecl: lsp.SymbolKind.Constructor,
    s.PropertyDecl: lsp.SymbolKind.Boolean,
    s.ConceptsDecl: lsp.SymbolKind.Enum,
    s.MonitorDecl: lsp.SymbolKind.Event,
}


def uri_of(path: Path) -> str:
    """A `file://` URI for a path on disk."""
    return path.resolve().as_uri()


# ---- diagnostics -------------------------------------------------------------------------


def diagnostics(analysis: Analysis) -> list[lsp.Diagnostic]:
    """The document's diagnostics, as `camlang check` reports them.

    A diagnostic in an imported file is shown on the `import` that loaded it, with its own
    `file:line:col` in front of the message.
    """
    return [_diagnostic(d, analysis) for d in analysis.program.diagnostics]


def _diagnostic(d: Diagnostic, analysis: Analysis) -> lsp.Diagnostic:
    message = d.message
    if d.span.source is not analysis.source and d.span is not NO_SPAN:
        message = f"{d.span.location()}: {message}"
    extra = [f"note: {n}" for n in d.notes] + ([f"hint: {d.hint}"] if d.hint else [])
    return lsp.Diagnostic(
        range=_diagnostic_range(d.span, analysis),
        message="\n".join([message, *extra]),
        severity=_SEVERITY[d.severity],
        code=d.code,
        source="camlang",
    )


def _diagnostic_range(span: Span, analysis: Analysis) -> lsp.Range:
    if span.source is analysis.source:
        return span_range(span)
    folder = analysis.source.path.parent if analysis.source.path is not None else Path.cwd()
    imports = [st for st in analysis.main_module.statements if isinstance(st, s.Import)]
    for st in imports:
        if span.source.path is not None and find_import(st.path.value, folder) == span.source.path:
            return span_range(analysis.relocate(st.span))
    return (
        span_range(analysis.relocate(imports[0].span))
        if imports
        else lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    )


# ---- hover, definition, references --------------------------------------------------------


def hover(analysis: Analysis, pos: lsp.Position) -> lsp.Hover | None:
    """Kind and type of a declared name, an op's signature and docstring, a source's parameters."""
    occ = analysis.at(offset(analysis.source.text, pos))
    if occ is None:
        return None
    text: str | None
    if occ.role == "call":
        text = describe_source(_keyword(occ.stmt), occ.name)
    elif occ.role == "argument":
        text = _describe_argument(occ)
    else:
        definition = analysis.definition(occ.name)
        text = hover_markdown(analysis.program, occ.name, definition.span if definition else None)
    if text is None:
        return None
    return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, text), span_range(occ.span))


def _describe_argument(occ: Occurrence) -> str | None:
    """A `synthesize` setting, or a keyword argument of the declaration's source call."""
    if isinstance(occ.stmt, s.SynthDecl):
        return describe_setting(occ.name)
    call = _source_call(occ.stmt)
    args = SOURCE_TABLES.get(_keyword(occ.stmt), {}).get(call.func.name, ()) if call else ()
    for arg in args:
        if arg.name == occ.name:
            return f"```cam\n{arg_text(arg)}\n```\n{arg_doc(arg)}"
    return None


def _source_call(stmt: s.Stmt) -> s.Call | None:
    match stmt:
        case s.ModelDecl() | s.DataDecl() | s.ConceptsDecl() | s.MonitorDecl():
            return stmt.source
        case s.PropertyDecl():
            return stmt.claim
    return None


def _keyword(stmt: s.Stmt) -> str:
    return {
        s.ModelDecl: "model",
        s.DataDecl: "data",
        s.PropertyDecl: "property",
        s.ConceptsDecl: "concepts",
        s.MonitorDecl: "monitor",
    }.get(type(stmt), "")


def _location(occ: Occurrence, fallback: str) -> lsp.Location:
    path = occ.span.source.path
    return lsp.Location(uri_of(path) if path is not None else fallback, span_range(occ.span))


def definition(analysis: Analysis, pos: lsp.Position, uri: str) -> lsp.Location | None:
    """Where the name under the cursor is declared (this file, an import, or the stdlib)."""
    occ = analysis.at(offset(analysis.source.text, pos))
    if occ is None or occ.role not in ("definition", "reference"):
        return None
    found = analysis.definition(occ.name)
    return None if found is None else _location(found, uri)


def references(
    analysis: Analysis, pos: lsp.Position, uri: str, include_declaration: bool
) -> list[lsp.Location]:
    """Every use of the declared name under the cursor, in this file and the files it imports."""
    occ = analysis.at(offset(analysis.source.text, pos))
    if occ is None or analysis.definition(occ.name) is None:
        return []
    found = analysis.references(occ.name)
    return [_location(o, uri) for o in found if include_declaration or o.role != "definition"]


# ---- completion, formatting, symbols ------------------------------------------------------


def completion(
    analysis: Analysis | None, text: str, pos: lsp.Position, folder: Path | None
) -> lsp.CompletionList:
    """Completion items at `pos` (names come from the last analysis, which may be of a broken file)."""
    before = text[: offset(text, pos)]
    program = analysis.program if analysis is not None else None
    items = [_item(c, i) for i, c in enumerate(complete(before, program, folder))]
    return lsp.CompletionList(is_incomplete=False, items=items)


def _item(c: Candidate, rank: int) -> lsp.CompletionItem:
    doc = lsp.MarkupContent(lsp.MarkupKind.Markdown, c.documentation) if c.documentation else None
    return lsp.CompletionItem(
        label=c.label,
        kind=_COMPLETION_KIND[c.kind],
        detail=c.detail or None,
        documentation=doc,
        insert_text=c.insert_text,
        sort_text=f"{rank:04d}",  # keep the order `complete` chose (context first)
    )


def formatting(text: str, name: str) -> list[lsp.TextEdit] | None:
    """`camlang fmt` as one edit; None (no change) while the file has syntax errors."""
    source = SourceFile(name, text)
    module, errors = parse_with_recovery(source)
    if errors:
        return None
    formatted = format_source(text, module)
    if formatted == text:
        return []
    whole = lsp.Range(lsp.Position(0, 0), position(source, len(text)))
    return [lsp.TextEdit(whole, formatted)]


def document_symbols(analysis: Analysis) -> list[lsp.DocumentSymbol]:
    """The outline: each declaration (kind and type as detail); grammars list their productions."""

    def where(span: Span) -> lsp.Range:
        return span_range(analysis.relocate(span))

    out: list[lsp.DocumentSymbol] = []
    for stmt in analysis.main_module.statements:
        kind = _SYMBOL_KIND.get(type(stmt))
        name = getattr(stmt, "name", None)  # every declaration has a `name: Ident`; actions have none
        if kind is None or not isinstance(name, s.Ident):
            continue
        children = None
        if isinstance(stmt, s.GrammarDecl):
            children = [
                lsp.DocumentSymbol(p.lhs.name, lsp.SymbolKind.Field, where(p.span), where(p.lhs.span))
                for p in stmt.productions
            ]
        detail = type(stmt).__name__.removesuffix("Decl").lower()
        out.append(
            lsp.DocumentSymbol(
                name.name, kind, where(stmt.span), where(name.span), detail=detail, children=children
            )
        )
    return out
