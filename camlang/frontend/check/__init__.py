"""The checker: resolves imports and names, binds arguments, infers types, lowers to IR.

All user errors are collected as diagnostics (several per file). The result is a `Program`.
A `.cam` file never executes Python: strings are data, and names resolve only to
declarations, terminals and op-table entries.

The parts: `imports` (finding and loading imported files), `declarations` (one check per
statement kind), `binding` (the one argument binder and literal values), `lower`
(expressions to IR). `Checker` puts them together.
"""

from __future__ import annotations

from pathlib import Path

from camlang.frontend import syntax as s
from camlang.frontend.check.base import suggest
from camlang.frontend.check.concepts import ConceptChecks
from camlang.frontend.check.declarations import DeclarationChecks
from camlang.frontend.check.imports import ImportChecks
from camlang.frontend.check.lower import ExpressionLowering
from camlang.frontend.parser import parse_with_recovery
from camlang.frontend.program import Program
from camlang.frontend.source import NO_SPAN, SourceFile
from camlang.frontend.value_types import AxisError

__all__ = ["Checker", "check_file", "check_text", "suggest"]


class Checker(ImportChecks, DeclarationChecks, ExpressionLowering, ConceptChecks):
    """Checks modules into one `Program`. The REPL keeps one and feeds it statements."""

    def check_source(self, source: SourceFile, *, is_main: bool = True) -> None:
        """Parse and check one file; its imports are checked first."""
        self.program.files.append(source)
        module, syntax_errors = parse_with_recovery(source)
        for d in syntax_errors:
            self.bag.add(d)
        self.check_module(module, source, is_main=is_main)

    def check_module(self, module: s.Module, source: SourceFile, *, is_main: bool = True) -> None:
        """Check parsed statements in order (imports are resolved when met)."""
        base = source.path.parent if source.path is not None else Path.cwd()
        if is_main:
            self._failed.clear()  # a REPL input must not hide names that failed in an earlier one
        for stmt in module.statements:
            try:
                self._statement(stmt, source, base, is_main)
            except AxisError as err:  # pragma: no cover - rules report through diagnostics
                self.bag.error("E301", err.message, getattr(stmt, "span", NO_SPAN), err.hint)
            name = getattr(stmt, "name", None)
            if isinstance(name, s.Ident):
                if self.program.kind_of(name.name) is None:
                    self._failed.add(name.name)
                else:
                    self._failed.discard(name.name)

    def _statement(self, stmt: s.Stmt, source: SourceFile, base: Path, is_main: bool) -> None:
        match stmt:
            case s.Import():
                self._import(stmt, base)
            case s.ModelDecl():
                self._model(stmt, base)
            case s.DataDecl():
                self._data(stmt, base)
            case s.CamDecl():
                self._cam(stmt, source)
            case s.MetricDecl():
                self._metric(stmt, source)
            case s.GrammarDecl():
                self._grammar(stmt)
            case s.SynthDecl():
                self._synth(stmt)
            case s.PropertyDecl():
                self._property(stmt, base)
            case s.Evaluate() | s.Check() | s.Export():
                if self._action(stmt) and is_main:
                    self.program.actions.append(stmt)
            case s.ConceptsDecl():
                self._concepts(stmt, base)
            case s.MonitorDecl():
                self._monitor(stmt, base)
            case s.Heatmaps() | s.Watch():
                if self._concept_action(stmt) and is_main:
                    self.program.actions.append(stmt)
            case _:
                raise AssertionError(f"unhandled statement {stmt!r}")


def check_file(path: str | Path, *, file_checks: bool = True) -> Program:
    """Parse and check a `.cam` file (and its imports). Diagnostics are in `program.diagnostics`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        from camlang.errors import CamlangError

        raise CamlangError(f"no such file: {p}", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as err:
        from camlang.errors import CamlangError

        raise CamlangError(f"cannot read {p}: {err}") from None
    return check_text(text, str(p), p.resolve(), file_checks=file_checks)


def check_text(
    text: str, name: str = "<input>", path: Path | None = None, *, file_checks: bool = True
) -> Program:
    """Parse and check source text."""
    source = SourceFile(name, text, path)
    program = Program(source)
    checker = Checker(program, file_checks=file_checks)
    if path is not None:
        checker._loaded.add(path)
        checker._loading.append(path)
    checker.check_source(source)
    program.diagnostics = checker.bag.items
    return program
