"""Key bindings: Enter continues an unfinished input, or accepts a complete one.

An input continues when a bracket or `{` block is open or an expression is unfinished (the
parser stopped at the end of the input). An empty last line, or Meta-Enter, accepts anyway.
Ctrl-C and Ctrl-D keep prompt_toolkit's meaning (cancel the input, exit on an empty line).
"""

from __future__ import annotations

from prompt_toolkit.filters import has_completions, is_done
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from camlang.repl.session import is_incomplete


def _indent(text: str) -> str:
    depth = max(0, text.count("{") - text.count("}"))
    return "    " * depth


def build_key_bindings() -> KeyBindings:
    """The REPL's extra key bindings."""
    kb = KeyBindings()

    @kb.add("enter", filter=~is_done)
    def _enter(event: KeyPressEvent) -> None:
        buf = event.current_buffer
        state = buf.complete_state
        if state is not None and state.current_completion is not None:
            buf.apply_completion(state.current_completion)
            return
        text = buf.document.text_before_cursor
        blank_last_line = "\n" in text and not text.rsplit("\n", 1)[-1].strip()
        if buf.document.is_cursor_at_the_end and is_incomplete(buf.text) and not blank_last_line:
            buf.insert_text("\n" + _indent(text))
            return
        buf.validate_and_handle()

    @kb.add("escape", "enter", filter=~is_done)
    def _accept(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    @kb.add("c-space", filter=~has_completions)
    def _complete(event: KeyPressEvent) -> None:
        event.current_buffer.start_completion(select_first=False)

    return kb
