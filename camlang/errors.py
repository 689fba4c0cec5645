"""Exceptions shared by every stage.

`CamlangError` is a *user* error: bad input, a missing file, an unsupported layer.
The CLI renders it as a diagnostic (exit code 1). Anything else that escapes is an
internal error (exit code 2, "internal error, please report").
"""

from __future__ import annotations


class CamlangError(Exception):
    """A user-facing error with a message, an optional hint and an optional code.

    `span` is filled in by the driver when the error can be tied to source text
    (a `camlang.frontend.source.Span`); loaders raise it without one.
    """

    def __init__(
        self, message: str, *, hint: str | None = None, code: str = "E900", span: object | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
        self.span = span

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} (hint: {self.hint})"


class Interrupted(Exception):
    """Raised when the user pressed Ctrl-C and partial results were kept."""
