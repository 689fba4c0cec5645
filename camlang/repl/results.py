"""What the REPL's parts hand each other: a `Result` of one input and a `Typed` expression.

Its own module, so that the session, the colon commands and the value display share these
types without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from camlang.frontend.diagnostics import Diagnostic, render
from camlang.frontend.ir import Node

ResultKind = Literal["empty", "ok", "value", "heatmap", "error", "internal", "interrupted", "exit"]


@dataclass
class Result:
    """What one input produced: its kind, text to print, diagnostics and optional heatmap."""

    kind: ResultKind
    output: str = ""
    diagnostics: list[Diagnostic] = field(default_factory=list)
    image_path: Path | None = None
    preview: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind not in ("error", "internal")

    def render(self, color: bool = False) -> str:
        """Diagnostics, then the text, then the preview: everything the user should see."""
        parts = [render(d, color) for d in self.diagnostics]
        if self.output:
            parts.append(self.output)
        if self.preview:
            parts.append(self.preview)
        return "\n".join(parts)


@dataclass
class Typed:
    """A bare expression lowered to IR, with the context it checked in ("cam" or "metric")."""

    node: Node
    context: str
    text: str
