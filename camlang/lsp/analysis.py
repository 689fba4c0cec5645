"""One checked document: its `Program`, the parsed modules of every file it loaded, and an index
of every name (definition or use) with its span.

`_IndexingChecker` is the project's checker with two changes: it parses through a `PieceParser`
(statements and imported files that did not change are not parsed again) and it keeps the
modules it parsed, so the index costs a walk over the ASTs and no second parse.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from camlang.frontend import syntax as s
from camlang.frontend.check import Checker
from camlang.frontend.diagnostics import Diagnostic
from camlang.frontend.op_table import OPS
from camlang.frontend.program import Program
from camlang.frontend.source import SourceFile, Span
from camlang.lsp.incremental import PieceParser, Pieces

#: "op": a call of an op-table entry; "call": any other call (a model, data or property source);
#: "argument": a keyword argument's name or a `synthesize` setting's key.
Role = Literal["definition", "reference", "op", "call", "argument"]

_DECLS = (
    s.ModelDecl,
    s.DataDecl,
    s.CamDecl,
    s.MetricDecl,
    s.GrammarDecl,
    s.SynthDecl,
    s.PropertyDecl,
    s.ConceptsDecl,
    s.MonitorDecl,
)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A name in the source: where a declaration is named, a use of one, or an op call."""

    name: str
    span: Span
    role: Role
    #: the statement it appears in (for a definition: the declaration itself)
    stmt: s.Stmt


@dataclass(slots=True)
class Analysis:
    """Everything the editor features read about one document.

    The name index is built on the first request that needs it, not when the document is
    checked: publishing diagnostics after an edit does not pay for it.
    """

    source: SourceFile
    program: Program
    modules: tuple[tuple[SourceFile, s.Module], ...]
    #: maps spans of the main module's statements (parsed piece by piece) to document offsets
    pieces: Pieces | None = None
    _occurrences: tuple[Occurrence, ...] | None = field(default=None, repr=False)

    @property
    def occurrences(self) -> tuple[Occurrence, ...]:
        """Every name in the document and the files it imports, with document spans."""
        if self._occurrences is None:
            self._occurrences = tuple(
                Occurrence(occ.name, self.relocate(occ.span), occ.role, occ.stmt)
                for _, module in self.modules
                for occ in _module_occurrences(module)
            )
        return self._occurrences

    def relocate(self, span: Span) -> Span:
        """A span of the main module's AST in the document's offsets."""
        return span if self.pieces is None else self.pieces.relocate(span)

    @property
    def main_module(self) -> s.Module:
        for source, module in self.modules:
            if source is self.source:
                return module
        return s.Module()

    def at(self, offset: int) -> Occurrence | None:
        """The name under character `offset` of the main document (its end counts too)."""
        for occ in self.occurrences:
            if occ.span.source is self.source and occ.span.start <= offset <= occ.span.end:
                return occ
        return None

    def definition(self, name: str) -> Occurrence | None:
        """Where `name` is declared, in this document or an imported file (the last one wins,
        as in the checker's redefinition rule)."""
        found = None
        for occ in self.occurrences:
            if occ.role == "definition" and occ.name == name:
                found = occ
        return found

    def references(self, name: str) -> list[Occurrence]:
        """Every use and the definition of a declared `name`, in every loaded file."""
        return [o for o in self.occurrences if o.name == name and o.role in ("definition", "reference")]


class _IndexingChecker(Checker):
    """The project's checker, parsing through a `PieceParser` and keeping each parsed module."""

    def __init__(self, program: Program, parser: PieceParser) -> None:
        super().__init__(program)
        self.parser = parser
        self.pieces = Pieces(program.main)
        self.modules: list[tuple[SourceFile, s.Module]] = []

    def check_source(self, source: SourceFile, *, is_main: bool = True) -> None:
        """`Checker.check_source`, with parses kept between edits."""
        self.program.files.append(source)
        if source is self.program.main:
            module, errors, self.pieces = self.parser.parse_document(source)
        else:
            _, module, errors = self.parser.parse_file(source)
        for d in errors:
            self.bag.add(d)
        self.modules.append((source, module))
        self.check_module(module, source, is_main=is_main)


def analyze(
    text: str, path: Path | None, name: str | None = None, parser: PieceParser | None = None
) -> Analysis:
    """Check `text` as the file at `path` (imports resolve next to it) and index its names.

    The same steps as `camlang.frontend.check.check_text`, so the diagnostics are those of
    `camlang check`. Pass the `parser` of the previous analysis of the same document to parse
    only the statements that changed.
    """
    source = SourceFile(name or (str(path) if path else "<untitled>"), text, path)
    program = Program(source)
    checker = _IndexingChecker(program, parser or PieceParser())
    if path is not None:
        checker._loaded.add(path)
        checker._loading.append(path)
    checker.check_source(source)
    pieces = checker.pieces
    program.diagnostics = [pieces.diagnostic(d) for d in checker.bag.items]
    return Analysis(source, program, tuple(checker.modules), pieces)


def internal_error(text: str, path: Path | None, name: str, err: Exception) -> Analysis:
    """An analysis that reports a checker crash as one diagnostic, so the server stays up."""
    source = SourceFile(name, text, path)
    program = Program(source)
    message = f"internal error, please report: {type(err).__name__}: {err}"
    program.diagnostics = [Diagnostic("E900", message, Span(source, 0, 0))]
    return Analysis(source, program, ((source, s.Module()),))


def _module_occurrences(module: s.Module) -> Iterator[Occurrence]:
    for stmt in module.statements:
        if isinstance(stmt, _DECLS):
            yield Occurrence(stmt.name.name, stmt.name.span, "definition", stmt)
        yield from _walk(stmt, stmt, top=True)


def _walk(node: object, stmt: s.Stmt, *, top: bool = False) -> Iterator[Occurrence]:
    """Uses of names below `node`: bare names, identifier slots that name declarations, op calls."""
    match node:
        case s.Name():
            yield Occurrence(node.id, node.span, "reference", stmt)
            return
        case s.Ident():
            yield Occurrence(node.name, node.span, "reference", stmt)
            return
        case s.Call():
            role: Role = "op" if node.func.name in OPS else "call"
            yield Occurrence(node.func.name, node.func.span, role, stmt)
            for arg in node.args:
                yield from _walk(arg, stmt)
            for kw in node.kwargs:  # the keyword names a parameter, not a declaration
                yield Occurrence(kw.name.name, kw.name.span, "argument", stmt)
                yield from _walk(kw.value, stmt)
            return
        case s.KwArg():
            yield from _walk(node.value, stmt)
            return
        case s.Setting():
            yield Occurrence(node.key.name, node.key.span, "argument", stmt)
            yield from _walk(node.value, stmt)
            return
        case s.Production():
            for alt in node.alternatives:
                yield from _walk(alt, stmt)
            return
        case s.ConceptTarget():  # `for concept SET.NAME`: NAME is a concept, not a declaration
            yield from _walk(node.concepts, stmt)
            return
        case tuple():
            for item in node:
                yield from _walk(item, stmt)
            return
    if not dataclasses.is_dataclass(node):
        return
    for f in dataclasses.fields(node):
        if f.name == "span" or (top and f.name == "name" and isinstance(node, _DECLS)):
            continue
        yield from _walk(getattr(node, f.name), stmt)
