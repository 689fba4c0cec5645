"""The bottom toolbar: current model, layer, data, image and cam."""

from __future__ import annotations

from collections.abc import Callable

from prompt_toolkit.formatted_text import StyleAndTextTuples

from camlang.repl.session import Session


def toolbar_fragments(session: Session) -> StyleAndTextTuples:
    """` model m  layer features.6  data test  image 0/8  cam gradcam`."""
    out: StyleAndTextTuples = []
    for key, value in session.status().items():
        out.append(("class:toolbar.key", f" {key} "))
        out.append(("class:toolbar.value", f"{value} "))
    out.append(("class:toolbar.key", "  :help"))
    return out


def make_toolbar(session: Session) -> Callable[[], StyleAndTextTuples]:
    """A toolbar callback for `PromptSession(bottom_toolbar=...)`."""
    return lambda: toolbar_fragments(session)
