"""Completion: keywords, declared names, ops (signature and docstring in the menu), terminals,
colon commands and their arguments, the declared models' layer paths after `@"` and in a
grammar's layer hole, and file paths inside other strings.

`analyze(text_before_cursor, session)` is a pure function returning `Candidate`s; `CamCompleter`
turns them into prompt_toolkit completions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from camlang.frontend import syntax as s
from camlang.frontend.op_table import FUNCTIONS, TERMINALS
from camlang.lsp.completion import is_layer_string
from camlang.repl.session import Session

_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*$")
_MAX_PATHS = 100


@dataclass(frozen=True, slots=True)
class Candidate:
    """One completion: the text to insert, how far back it replaces, and what the menu shows."""

    text: str
    start: int  # <= 0: offset from the cursor where the replaced text begins
    display: str
    meta: str = ""


def analyze(text: str, session: Session) -> list[Candidate]:
    """Completions for the input `text` (everything before the cursor)."""
    line = text.rsplit("\n", 1)[-1]
    if text.lstrip().startswith(":") and "\n" not in text.strip():
        return _command(line.lstrip(), session)
    where, prefix = _position(line)
    if where == "comment":
        return []
    if where == "string":
        if is_layer_string(line[: len(line) - len(prefix) - 1], text):
            return layers(prefix, session)
        return paths(prefix)
    return words(_word(line), session, statement_start=not text[: len(text) - len(_word(line))].strip())


def _word(line: str) -> str:
    m = _WORD.search(line)
    return m.group(0) if m else ""


def _position(line: str) -> tuple[str, str]:
    """Is the end of `line` in "code", a "string" (with the text after its `"`) or a "comment"?"""
    inside, start, i = False, 0, 0
    while i < len(line):
        ch = line[i]
        if inside and ch == "\\":
            i += 2
            continue
        if ch == '"':
            inside, start = not inside, i + 1
        elif ch == "#" and not inside:
            return "comment", ""
        i += 1
    return ("string", line[start:]) if inside else ("code", "")


def words(prefix: str, session: Session, *, statement_start: bool = False) -> list[Candidate]:
    """Keywords, declared names, ops and terminals starting with `prefix`."""
    out: list[tuple[int, Candidate]] = []
    start = -len(prefix)
    declared = session.names()
    for name, kind in declared.items():
        if name.startswith(prefix):
            out.append((1, Candidate(name, start, name, session.describe(name) or kind)))
    for name, spec in FUNCTIONS.items():
        if name.startswith(prefix) and name not in declared:
            doc = spec.doc.strip().splitlines()[0] if spec.doc else ""
            out.append((2, Candidate(name, start, spec.signature(), doc)))
    for name, spec in TERMINALS.items():
        if name.startswith(prefix) and name not in declared:
            out.append(
                (
                    3,
                    Candidate(
                        name, start, name, spec.doc.strip().splitlines()[0] if spec.doc else "terminal"
                    ),
                )
            )
    keywords = s.STATEMENT_KEYWORDS if statement_start else sorted(s.KEYWORDS)
    for kw in keywords:
        if kw.startswith(prefix) and kw != prefix:
            out.append((0 if statement_start else 4, Candidate(kw, start, kw, "keyword")))
    out.sort(key=lambda item: (item[0], item[1].text))
    return [c for _, c in out]


def layers(prefix: str, session: Session) -> list[Candidate]:
    """The declared models' layer paths starting with `prefix` (after `@"`, in a layer hole)."""
    return [
        Candidate(layer, -len(prefix), layer, "layer of " + ", ".join(models))
        for layer, models in session.layer_paths().items()
        if layer.startswith(prefix)
    ]


def paths(prefix: str, base: Path | None = None) -> list[Candidate]:
    """Files and folders whose path starts with `prefix` (relative to `base`, default the cwd)."""
    head, _, tail = prefix.rpartition("/")
    folder = Path(os.path.expanduser(head + "/" if head or prefix.startswith("/") else "."))
    if base is not None and not folder.is_absolute():
        folder = base / folder
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    out = []
    for entry in entries:
        if not entry.name.startswith(tail) or (entry.name.startswith(".") and not tail.startswith(".")):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        shown = entry.name + ("/" if is_dir else "")
        out.append(Candidate(shown, -len(tail), shown, "folder" if is_dir else "file"))
        if len(out) >= _MAX_PATHS:
            break
    return out


def _command(line: str, session: Session) -> list[Candidate]:
    from camlang.repl.commands import COMMANDS

    if " " not in line:
        return [
            Candidate(":" + c.name, -len(line), c.usage, c.help)
            for c in COMMANDS.values()
            if (":" + c.name).startswith(line)
        ]
    name, _, rest = line[1:].partition(" ")
    args = rest.split(" ")
    current = args[-1]
    declared = session.names()

    def named(kind: str) -> list[Candidate]:
        return [
            Candidate(n, -len(current), n, k)
            for n, k in declared.items()
            if k == kind and n.startswith(current)
        ]

    if name in ("type", "ir", "simplify", "t"):
        return words(_word(rest), session)
    if name in ("load", "save"):
        return paths(current)
    if name == "help":
        return [Candidate(c, -len(current), c) for c in COMMANDS if c.startswith(current)]
    if name == "grid":
        return named("cam")
    if name == "export":
        return named("cam") if len(args) == 1 else paths(current)
    if name == "use":
        if len(args) == 1:
            return [Candidate(k, -len(current), k) for k in ("model", "data", "cam") if k.startswith(current)]
        return named(args[0]) if len(args) == 2 else []
    return []


class CamCompleter(Completer):
    """prompt_toolkit adapter over `analyze` (an empty word completes only on Tab)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        candidates = analyze(text, self.session)
        if not complete_event.completion_requested and candidates and all(c.start == 0 for c in candidates):
            return
        for c in candidates:
            yield Completion(c.text, c.start, display=c.display, display_meta=c.meta)
