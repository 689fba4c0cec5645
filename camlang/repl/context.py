"""What the colon commands and the value display may see of a REPL session.

`commands.py` and `show.py` work against `ReplSession`, not against `Session` itself, so the
session imports them (downwards) and they never import the session back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from camlang.frontend import syntax as s
from camlang.frontend.check import Checker
from camlang.frontend.diagnostics import Diagnostic
from camlang.frontend.ir import Node
from camlang.frontend.program import Program
from camlang.repl.results import Result, Typed
from camlang.run.state import RunState


class ReplSession(Protocol):
    """The state of one session and the operations a command or a display runs on it."""

    out_dir: Path
    program: Program
    checker: Checker
    state: RunState
    opener: Callable[[Path], object]
    preview_width: int
    truecolor: bool | None
    history: list[str]
    loaded_files: list[Path]
    log: list[tuple[str, str]]
    entries: dict[str, tuple[str, Path]]
    imports: list[str]
    current_model: str | None
    current_data: str | None
    current_cam: str | None
    current_cam_node: Node | None
    image: int
    last_png: Path | None
    counter: int

    def reset_program(self) -> None:
        """Forget every declaration: a fresh program, checker and run state."""
        ...

    def select_defaults(self) -> None:
        """Point the current model, data and cam at declared ones."""
        ...

    def remember(self, stmt: s.Stmt, base: Path) -> None:
        """Record a declaration's text (for `:save`)."""
        ...

    def summary(self) -> str:
        """What the session has declared, in a few words."""
        ...

    def names(self) -> dict[str, str]:
        """Every declared name and its kind."""
        ...

    def describe(self, name: str) -> str:
        """One line about a declared name."""
        ...

    def run_source(self, text: str) -> Result:
        """Check and run declarations and actions (or a bare expression)."""
        ...

    def type_expression(self, text: str) -> Typed | list[Diagnostic]:
        """Lower `text` as an expression, or the diagnostics why it is not one."""
        ...

    def export(self, name: str, target: Path) -> str:
        """Write cam `name` as a standalone module."""
        ...
