"""The REPL's colon commands (`:help`, `:load`, `:use model m`, `:grid a b`, ...).

Each command is a function `(session, argument text) -> Result` in one table, which `:help`
and the completer read too.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from camlang.errors import CamlangError
from camlang.frontend.diagnostics import Diagnostic
from camlang.frontend.parser import parse_with_recovery
from camlang.frontend.source import SourceFile
from camlang.passes.simplify import simplify
from camlang.repl import show
from camlang.repl.context import ReplSession
from camlang.repl.results import Result, ResultKind, Typed


@dataclass(frozen=True, slots=True)
class Command:
    """One colon command: its usage line, help text and handler."""

    name: str
    usage: str
    help: str
    run: Callable[[ReplSession, str], Result]


def run_command(session: ReplSession, text: str) -> Result:
    """Dispatch `:name args`; unknown commands get a suggestion."""
    word, _, rest = text[1:].partition(" ")
    word = word.strip()
    cmd = COMMANDS.get(ALIASES.get(word, word))
    if cmd is None:
        from camlang.frontend.check import suggest

        hint = suggest(word, COMMANDS) or ":help lists the commands"
        raise CamlangError(f"unknown command `:{word}`", hint=hint)
    return cmd.run(session, rest.strip())


def _ok(text: str) -> Result:
    return Result("ok", text)


def _need(arg: str, usage: str) -> str:
    if not arg:
        raise CamlangError(f"missing argument: usage {usage}")
    return arg


def _path_arg(arg: str, usage: str) -> Path:
    try:
        parts = shlex.split(_need(arg, usage))
    except ValueError as err:
        raise CamlangError(f"cannot read the path {arg!r}: {err}", hint=f"usage {usage}") from None
    if len(parts) != 1:
        raise CamlangError(f"expected one path, got {len(parts)}: {arg}", hint=f"usage {usage}")
    return Path(parts[0]).expanduser()


def _help(session: ReplSession, arg: str) -> Result:
    name = arg.lstrip(":")
    if name:
        cmd = COMMANDS.get(ALIASES.get(name, name))
        if cmd is None:
            raise CamlangError(f"no command `:{name}`", hint=":help lists the commands")
        return _ok(f"{cmd.usage}\n  {cmd.help}")
    width = max(len(c.usage) for c in COMMANDS.values())
    lines = [
        "Type declarations and actions of the language (cam x = ..., evaluate [...] on m, d with [...]),",
        "or a bare expression to see its type and value (a cam expression shows its heatmap).",
        "",
    ]
    lines += [f"  {c.usage.ljust(width)}  {c.help}" for c in COMMANDS.values()]
    lines += ["", "Tab completes; Enter on an unfinished input continues it; Ctrl-C cancels; Ctrl-D exits."]
    return _ok("\n".join(lines))


def load_file(session: ReplSession, path: Path, *, replay: bool = False) -> Result:
    """Check a .cam file's declarations into the session (its actions are listed, not run)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CamlangError(
            f"no such file: {path}", hint="check the path (relative to the current folder)"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise CamlangError(f"cannot read {path}: {err}") from None
    resolved = path.resolve()
    source = SourceFile(str(path), text, resolved)
    session.program.files.append(source)
    module, syntax = parse_with_recovery(source)
    before_actions = len(session.program.actions)
    before = len(session.checker.bag.items)
    session.checker.check_module(module, source)
    diags: list[Diagnostic] = syntax + session.checker.bag.items[before:]
    skipped = len(session.program.actions) - before_actions
    del session.program.actions[before_actions:]
    for stmt in module.statements:
        session.remember(stmt, resolved.parent)
    if not replay and resolved not in session.loaded_files:
        session.loaded_files.append(resolved)
        session.log.append(("load", str(resolved)))
    session.select_defaults()
    lines = [f"loaded {path} ({session.summary()})"]
    if skipped:
        lines.append(f"{skipped} action{'s' if skipped != 1 else ''} in the file not run: type one to run it")
    kind: ResultKind = "error" if any(d.is_error for d in diags) else "ok"
    return Result(kind, "\n".join(lines), diagnostics=diags)


def _load(session: ReplSession, arg: str) -> Result:
    return load_file(session, _path_arg(arg, ":load FILE"))


def _reload(session: ReplSession, arg: str) -> Result:
    log = list(session.log)
    keep = (session.current_model, session.current_data, session.current_cam, session.image)
    session.reset_program()
    diags: list[Diagnostic] = []
    for kind, value in log:
        result = load_file(session, Path(value), replay=True) if kind == "load" else session.run_source(value)
        diags += result.diagnostics
    session.current_model, session.current_data, session.current_cam, session.image = keep
    session.current_cam_node = None
    session.select_defaults()
    files = len([k for k, _ in log if k == "load"])
    inputs = len(log) - files
    return Result(
        "error" if any(d.is_error for d in diags) else "ok",
        f"reloaded {files} file(s) and {inputs} input(s); models and data reload when next used",
        diagnostics=diags,
    )


def _listing(session: ReplSession, kind: str, current: str | None) -> Result:
    names = [n for n, k in session.names().items() if k == kind]
    if not names:
        return _ok(f"no {kind} declared")
    lines = []
    for name in names:
        mark = "*" if name == current else " "
        lines.append(f"{mark} {session.describe(name)}")
    return _ok("\n".join(lines))


def _use(session: ReplSession, arg: str) -> Result:
    parts = arg.split()
    if len(parts) != 2 or parts[0] not in ("model", "data", "cam"):
        raise CamlangError(
            f"cannot understand `:use {arg}`", hint=":use model NAME, :use data NAME or :use cam NAME"
        )
    kind, name = parts
    if session.names().get(name) != kind:
        from camlang.frontend.check import suggest

        pool = [n for n, k in session.names().items() if k == kind]
        raise CamlangError(
            f"no {kind} named `{name}`", hint=suggest(name, pool) or f"{kind}s: {', '.join(pool) or 'none'}"
        )
    if kind == "model":
        session.current_model = name
    elif kind == "data":
        session.current_data = name
        session.image = 0
    else:
        session.current_cam, session.current_cam_node = name, None
    return _ok(f"using {kind} {name}")


def _image(session: ReplSession, arg: str) -> Result:
    try:
        n = int(_need(arg, ":image N"))
    except ValueError:
        raise CamlangError(f"`:image` needs an image index, got {arg!r}", hint="e.g. :image 3") from None
    if session.current_data is None:
        raise CamlangError("no data selected", hint="declare data first, or :use data NAME")
    size = len(session.state.data(session.current_data))
    if not 0 <= n < size:
        raise CamlangError(
            f"image {n} is out of range: `{session.current_data}` has {size} images",
            hint=f"choose 0 <= N < {size}",
        )
    session.image = n
    return _ok(f"image {n} of {session.current_data}")


def _typed(session: ReplSession, arg: str, usage: str) -> Typed | Result:
    typed = session.type_expression(_need(arg, usage))
    if isinstance(typed, list):
        return Result("error", diagnostics=typed)
    return typed


def _type(session: ReplSession, arg: str) -> Result:
    typed = _typed(session, arg, ":type EXPR")
    if isinstance(typed, Result):
        return typed
    return _ok(f"{typed.text} : {typed.node.ty}  ({typed.context} expression)")


def _ir(session: ReplSession, arg: str) -> Result:
    typed = _typed(session, arg, ":ir EXPR")
    if isinstance(typed, Result):
        return typed
    return _ok(show.ir_passes(session, typed))


def _simplify(session: ReplSession, arg: str) -> Result:
    from camlang.frontend.ir import to_text

    typed = _typed(session, arg, ":simplify EXPR")
    if isinstance(typed, Result):
        return typed
    node = simplify(session.program.builder, typed.node)
    same = " (already simplest)" if node is typed.node else ""
    return _ok(f"{to_text(node)}{same}")


def _export(session: ReplSession, arg: str) -> Result:
    parts = arg.split(maxsplit=1)
    if len(parts) != 2:
        raise CamlangError(f"cannot understand `:export {arg}`", hint="usage :export NAME FILE.py")
    target = _path_arg(parts[1], ":export NAME FILE.py")
    if target.suffix != ".py":
        raise CamlangError(f'export writes a Python file; "{target}" does not end in .py')
    return _ok(session.export(parts[0], target))


def _save(session: ReplSession, arg: str) -> Result:
    target = _path_arg(arg, ":save FILE.cam")
    folder = target.resolve().parent
    lines = ["# Declarations saved from a camlang REPL session.", *session.imports, ""]
    others = set()
    for text, base in session.entries.values():
        lines.append(text)
        if base != folder:
            others.add(str(base))
    notes = ""
    if others:
        notes = "\nnote: relative paths in these declarations were relative to " + ", ".join(sorted(others))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    except OSError as err:
        raise CamlangError(f"cannot write {target}: {err.strerror}", hint="check the folder") from None
    return _ok(f"saved {len(session.entries)} declarations to {target}{notes}")


def _history(session: ReplSession, arg: str) -> Result:
    shown = session.history[:-1]  # not `:history` itself
    width = len(str(len(shown)))
    return _ok("\n".join(f"{i + 1:>{width}}  {line}" for i, line in enumerate(shown)) or "(no input yet)")


def _open(session: ReplSession, arg: str) -> Result:
    if session.last_png is None:
        raise CamlangError("no heatmap yet", hint="show a cam first, e.g. type `gradcam`")
    session.opener(session.last_png)
    return _ok(f"opened {session.last_png}")


def _grid(session: ReplSession, arg: str) -> Result:
    names = _need(arg, ":grid CAM1 CAM2 ...").replace(",", " ").split()
    return show.grid(session, names)


def _quit(session: ReplSession, arg: str) -> Result:
    return Result("exit", "bye")


def _models(s: ReplSession, a: str) -> Result:
    return _listing(s, "model", s.current_model)


def _data(s: ReplSession, a: str) -> Result:
    return _listing(s, "data", s.current_data)


def _cams(s: ReplSession, a: str) -> Result:
    return _listing(s, "cam", s.current_cam)


def _metrics(s: ReplSession, a: str) -> Result:
    return _listing(s, "metric", None)


def _concepts(s: ReplSession, a: str) -> Result:
    from camlang.concepts.terminal import list_concept_sources

    return _ok(list_concept_sources(s.program))


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("help", ":help [COMMAND]", "this help, or one command's", _help),
        Command("load", ":load FILE", "check a .cam file's declarations into the session", _load),
        Command("reload", ":reload", "re-read the loaded files and replay the inputs", _reload),
        Command("models", ":models", "list the models (* = current)", _models),
        Command("data", ":data", "list the data sets (* = current)", _data),
        Command("cams", ":cams", "list the cams (* = the one metric expressions read as L)", _cams),
        Command("metrics", ":metrics", "list the metrics", _metrics),
        Command("concepts", ":concepts", "list the concept sources and monitors", _concepts),
        Command("use", ":use model|data|cam NAME", "select the current model, data or cam", _use),
        Command("image", ":image N", "select image N of the current data", _image),
        Command("type", ":type EXPR", "the type of an expression (nothing is evaluated)", _type),
        Command("ir", ":ir EXPR", "the expression's IR after lowering and after each pass", _ir),
        Command("simplify", ":simplify EXPR", "the expression after the simplifier", _simplify),
        Command("grid", ":grid CAM1 CAM2 ...", "write a comparison grid PNG of cams on a few images", _grid),
        Command("open", ":open", "open the last heatmap or grid PNG", _open),
        Command("export", ":export NAME FILE.py", "write a cam as a standalone nn.Module file", _export),
        Command("save", ":save FILE.cam", "write the session's declarations as a .cam file", _save),
        Command("history", ":history", "the inputs of this session", _history),
        Command("quit", ":quit", "leave (Ctrl-D works too)", _quit),
    )
}
ALIASES = {"q": "quit", "exit": "quit", "h": "help", "?": "help", "t": "type"}
