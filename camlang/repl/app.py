"""`camlang repl [FILE]`: the prompt_toolkit application around a `Session`.

The loop reads an input (highlighted, completed, validated, multi-line), runs it through
`Session.execute` and prints the result; Ctrl-C cancels the input (or a running job), Ctrl-D
exits. History persists in `$CAMLANG_HISTORY`, else `$XDG_DATA_HOME/camlang/history`, else
`~/.local/share/camlang/history`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from rich.console import Console

from camlang.core.version import __version__
from camlang.repl.commands import load_file
from camlang.repl.completer import CamCompleter
from camlang.repl.keys import build_key_bindings
from camlang.repl.lexer import CamLexer
from camlang.repl.results import Result
from camlang.repl.session import Session
from camlang.repl.style import STYLE
from camlang.repl.toolbar import make_toolbar
from camlang.repl.validator import CamValidator


def history_path(environ: dict[str, str] | None = None) -> Path:
    """Where the persistent input history lives."""
    env = dict(os.environ) if environ is None else environ
    if env.get("CAMLANG_HISTORY"):
        return Path(env["CAMLANG_HISTORY"]).expanduser()
    data_home = env.get("XDG_DATA_HOME") or str(Path("~/.local/share").expanduser())
    return Path(data_home) / "camlang" / "history"


def _history(path: Path, out: TextIO) -> History:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        return FileHistory(str(path))
    except OSError as err:
        print(f"warning: history is not saved: cannot write {path}: {err.strerror}", file=out)
        return InMemoryHistory()


def show(result: Result, out: TextIO, color: bool) -> None:
    """Print a result: diagnostics with carets, text, then the heatmap preview (colour only)."""
    if result.kind == "empty":
        return
    from camlang.frontend.diagnostics import render

    parts = [render(d, color) for d in result.diagnostics]
    if result.output:
        parts.append(result.output)
    if result.preview and color:
        parts.append(result.preview)
    if parts:
        print("\n".join(parts), file=out, flush=True)


def run_repl(
    file: str | None = None,
    *,
    input: Input | None = None,
    output: Output | None = None,
    out: TextIO | None = None,
    out_dir: str | Path | None = None,
    history: Path | None = None,
    color: bool | None = None,
) -> int:
    """Run the interactive loop until `:quit` or Ctrl-D; returns the exit code (0).

    `input`/`output` are prompt_toolkit's (tests pass a pipe input and `DummyOutput`); results
    are printed to `out` (default stdout), in colour when it is a terminal and NO_COLOR is unset.
    """
    out = out or sys.stdout
    if color is None:
        color = out.isatty() and os.environ.get("NO_COLOR") is None
    folder = (
        Path(out_dir) if out_dir is not None else Path(os.environ.get("CAMLANG_REPL_OUT", "camlang-out/repl"))
    )
    progress = Console(file=sys.stderr) if sys.stderr.isatty() else None
    session = Session(folder, progress_console=progress)
    print(f"camlang {__version__} REPL: :help for commands, Tab completes, Ctrl-D exits", file=out)
    if file is not None:
        try:
            result = load_file(session, Path(file))
        except Exception as err:  # noqa: BLE001 - the session goes on without the file
            result = session_error(session, err)
        show(result, out, color)
    prompt: PromptSession[str] = PromptSession(
        message=FormattedText([("class:prompt", "cam> ")]),
        multiline=True,
        prompt_continuation=lambda width, line, soft: FormattedText(
            [("class:continuation", "...> ".rjust(width))]
        ),
        lexer=CamLexer(lambda: session.names()),
        completer=CamCompleter(session),
        complete_while_typing=True,
        validator=CamValidator(),
        validate_while_typing=False,
        auto_suggest=AutoSuggestFromHistory(),
        history=_history(history or history_path(), out),
        key_bindings=build_key_bindings(),
        bottom_toolbar=make_toolbar(session),
        style=STYLE,
        include_default_pygments_style=False,
        input=input,
        output=output,
    )
    while True:
        try:
            text = prompt.prompt()
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        result = session.execute(text)
        show(result, out, color)
        if result.kind == "exit":
            break
    return 0


def session_error(session: Session, err: Exception) -> Result:
    """A `Result` for an exception raised outside `Session.execute` (e.g. loading the start file)."""
    from camlang.errors import CamlangError
    from camlang.frontend.diagnostics import CompileError

    if isinstance(err, CompileError):
        return Result("error", diagnostics=list(err.diagnostics))
    if isinstance(err, CamlangError):
        return Result("error", diagnostics=[session.error_diagnostic(err)])
    return Result("internal", f"internal error, please report: {type(err).__name__}: {err}")
