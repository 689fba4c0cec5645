"""State shared by the checker's parts, and the name lookups they all use."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from camlang.frontend import syntax as s
from camlang.frontend.diagnostics import DiagnosticBag
from camlang.frontend.ir import Node
from camlang.frontend.op_table import TERMINALS
from camlang.frontend.program import Program
from camlang.frontend.signatures import Arg
from camlang.frontend.source import SourceFile


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """`did you mean ...?` for the closest candidate, if any is close enough."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


class Reported(Exception):
    """A diagnostic was recorded; unwind the current expression."""


class CheckerBase:
    """The program being built, the diagnostics so far, and name bookkeeping."""

    def __init__(self, program: Program, *, allow_redefine: bool = False, file_checks: bool = True) -> None:
        self.program = program
        self.bag = DiagnosticBag()
        self.allow_redefine = allow_redefine
        self.file_checks = file_checks
        self._loading: list[Path] = []
        self._loaded: set[Path] = set()
        # Declarations that failed to check: later uses stay silent instead of cascading into
        # "unknown name" errors (the first diagnostic already explains the problem).
        self._failed: set[str] = set()

    def check_source(self, source: SourceFile, *, is_main: bool = True) -> None:
        """Parse and check one file (the `Checker` implements it; imports recurse into it)."""
        raise NotImplementedError

    def lower(self, expr: s.Expr, context: str) -> Node | None:
        """Lower an expression to IR (the `Checker` implements it; cam and metric checks use it)."""
        raise NotImplementedError

    def _bind(self, call: s.Call, spec: tuple[Arg, ...], base: Path | None) -> dict[str, Any] | None:
        """Bind a declaration call's literal arguments (`DeclarationChecks` implements it)."""
        raise NotImplementedError

    def _concept_target(self, stmt: s.Evaluate, target: s.ConceptTarget) -> bool:
        """Check `evaluate ... for concept SET.NAME` (`ConceptChecks` implements it)."""
        raise NotImplementedError

    def _declare(self, ident: s.Ident, kind: str) -> bool:
        """Claim a name; report duplicates (or warn, in the REPL). False if it must be skipped."""
        name = ident.name
        if name in s.KEYWORDS:
            self.bag.error("E105", f"`{name}` is a keyword and cannot be declared", ident.span)
            return False
        if name in TERMINALS or name == "const":
            self.bag.error("E105", f"`{name}` is a built-in terminal", ident.span, "choose another name")
            return False
        existing = self.program.kind_of(name)
        if existing is not None:
            if self.allow_redefine:
                self.bag.warning("W002", f"redefining {existing} `{name}`", ident.span)
                del self.program.tables()[existing][name]
                return True
            self.bag.error(
                "E102",
                f"`{name}` is already defined (as a {existing})",
                ident.span,
                "each name may be declared once; rename one of them",
            )
            return False
        return True

    def _expect(self, ident: s.Ident, kinds: tuple[str, ...]) -> bool:
        """Whether `ident` names a declaration of one of `kinds`; report it if not."""
        name = ident.name
        have = self._kind(name)
        if have in kinds:
            return True
        wanted = " or ".join(kinds)
        if have is None and name in self._failed:
            return False
        if have is None:
            pool = [n for k in kinds for n in self._names_of(k)]
            self.bag.error(
                "E101",
                f"unknown {wanted} `{name}`",
                ident.span,
                suggest(name, pool) or f"declare it with `{kinds[0]} {name} = ...`",
            )
        else:
            self.bag.error("E202", f"`{name}` is a {have}, not a {wanted}", ident.span)
        return False

    def _kind(self, name: str) -> str | None:
        if name in self.program.synths:
            return "cam"
        return self.program.kind_of(name)

    def _names_of(self, kind: str) -> list[str]:
        if kind == "cam":
            return list(self.program.cams) + list(self.program.synths)
        return list(self.program.tables().get(kind, {}))

    def _unknown(self, ident: s.Ident, table: Iterable[str], what: str) -> None:
        names = list(table)
        self.bag.error(
            "E101",
            f"unknown {what} `{ident.name}`",
            ident.span,
            suggest(ident.name, names) or f"known: {', '.join(sorted(names))}",
        )
