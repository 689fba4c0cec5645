"""Imports: find the file an `import` names, refuse cycles, check each file once."""

from __future__ import annotations

from pathlib import Path

from camlang.frontend import syntax as s
from camlang.frontend.check.base import CheckerBase
from camlang.frontend.source import SourceFile
from camlang.paths import stdlib_root


class ImportChecks(CheckerBase):
    """Resolves `import "file.cam"` statements relative to the importing file or the stdlib."""

    def _import(self, stmt: s.Import, base: Path) -> None:
        rel = stmt.path.value
        target = find_import(rel, base)
        if target is None:
            self.bag.error(
                "E103",
                f'cannot import "{rel}": no such file',
                stmt.path.span,
                f"looked in {base} and in the installed stdlib ({stdlib_root()})",
            )
            return
        if target in self._loading:
            chain = " -> ".join(p.name for p in self._loading[self._loading.index(target) :] + [target])
            self.bag.error("E104", f"import cycle: {chain}", stmt.path.span, "remove one of these imports")
            return
        if target in self._loaded:
            return
        self._loaded.add(target)
        self._loading.append(target)
        try:
            text = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            self.bag.error("E103", f'cannot read "{rel}": {err}', stmt.path.span)
            self._loading.pop()
            return
        self.check_source(SourceFile(display_path(target), text, target), is_main=False)
        self._loading.pop()


def find_import(rel: str, base: Path) -> Path | None:
    """The file an import names, relative to the importing file or to the stdlib; None if absent."""
    for root in (base, stdlib_root()):
        try:  # a NUL byte or an over-long name is a user error, reported as "no such file"
            candidate = (root / rel).resolve()
            if candidate.is_file():
                return candidate
        except (OSError, ValueError):
            continue
    return None


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it, else as given."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
