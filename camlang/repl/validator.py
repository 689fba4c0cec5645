"""Validation before an input is accepted: syntax errors from the compiler's own diagnostics.

Only syntax is checked here (cheap, and side-effect free); name and type errors are reported by
the session after submission, with the full rendered diagnostic and its hint.
"""

from __future__ import annotations

from prompt_toolkit.document import Document
from prompt_toolkit.validation import ValidationError, Validator

from camlang.repl.session import is_incomplete, syntax_diagnostics


class CamValidator(Validator):
    """Marks the first syntax error: the cursor moves to it and its message shows below."""

    def validate(self, document: Document) -> None:
        text = document.text
        if is_incomplete(text):
            return  # Enter continues the input; Meta-Enter sends it and the session reports it
        for d in syntax_diagnostics(text):
            if d.is_error:
                line, col = d.span.line_col()
                raise ValidationError(
                    cursor_position=d.span.start, message=f"{d.code} {line}:{col}: {d.message}"
                )
