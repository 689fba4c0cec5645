"""The REPL's session: a pure object that executes text and returns results.

`Session.execute(text) -> Result` runs one input: a colon command (`:help`, `:use model m`, ...),
declarations and actions of the language, or a bare expression, which is typed and, when a
model and data are declared, evaluated on the current image. It never imports prompt_toolkit,
so tests drive it directly, and it never raises: user errors become diagnostics, and anything
else becomes an "internal error, please report" result.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import traceback
import webbrowser
from collections.abc import Callable
from pathlib import Path

from rich.console import Console, RenderableType

from camlang.core.version import __version__
from camlang.errors import CamlangError
from camlang.frontend import syntax as s
from camlang.frontend.check import Checker
from camlang.frontend.diagnostics import CompileError, Diagnostic
from camlang.frontend.ir import Node
from camlang.frontend.parser import parse_with_recovery
from camlang.frontend.pretty import pretty_stmt
from camlang.frontend.program import Program
from camlang.frontend.source import NO_SPAN, SourceFile, Span
from camlang.repl.commands import run_command
from camlang.repl.layer_names import LayerNames
from camlang.repl.results import Result, Typed
from camlang.repl.show import show_value
from camlang.report import RunReport
from camlang.run.state import RunOptions, RunState

#: What a bare expression is wrapped in to parse it (its diagnostics are shifted back).
_WRAP = "cam _ = "


class Session:
    """One interactive session: the checked program, the current selection and the outputs.

    `out_dir` receives heatmap PNGs, grids and relative `export` targets. `progress_console`
    is where progress bars of evaluate, synthesize and check go (None: nowhere). `opener`
    opens a file for `:open` (default: the system's viewer through `webbrowser`).
    """

    def __init__(
        self,
        out_dir: str | Path = Path("camlang-out") / "repl",
        *,
        device: str = "cpu",
        progress_console: Console | None = None,
        opener: Callable[[Path], object] | None = None,
        preview_width: int = 32,
        truecolor: bool | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.device = device
        self.progress_console = progress_console or Console(file=io.StringIO(), force_terminal=False)
        self.opener: Callable[[Path], object] = opener or (lambda p: webbrowser.open(p.resolve().as_uri()))
        self.preview_width = preview_width
        self.truecolor = truecolor
        self.history: list[str] = []
        self.loaded_files: list[Path] = []
        #: What `:reload` replays: ("load", path) and ("source", declaration text), in order.
        self.log: list[tuple[str, str]] = []
        #: Declarations typed (or loaded) in this session, by name, as canonical source text.
        self.entries: dict[str, tuple[str, Path]] = {}
        self.imports: list[str] = []
        self.current_model: str | None = None
        self.current_data: str | None = None
        self.current_cam: str | None = None
        #: The node of the current cam when it is an expression rather than a declared name.
        self.current_cam_node: Node | None = None
        self.image = 0
        self.last_png: Path | None = None
        self.counter = 0
        self._layers = LayerNames()
        self.reset_program()

    # ---- state ------------------------------------------------------------------------
    def reset_program(self) -> None:
        self.program = Program(SourceFile("<repl>", ""))
        self.checker = Checker(self.program, allow_redefine=True)
        options = RunOptions(self.out_dir, self.device, batch_size=32)
        created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        # the REPL keeps the lazy synthesis: a synthesized cam typed at the prompt runs it first
        self.state = RunState.one_process(
            self.program, options, self.progress_console, synthesize_on_demand=True
        )
        self.state.report = RunReport(__version__, "<repl>", created, options.seed, self.device)

    def summary(self) -> str:
        """`1 model, 1 data, 10 cams, ...`: what the session has declared."""
        plural = {"data": "data", "property": "properties", "synthesize": "syntheses"}
        parts = [
            f"{len(v)} {k if len(v) == 1 else plural.get(k, k + 's')}"
            for k, v in self.program.summary().items()
        ]
        return ", ".join(parts) or "no declarations"

    def names(self) -> dict[str, str]:
        """Every declared name and its kind (synthesized cams count as cams)."""
        out = {n: kind for kind, table in self.program.tables().items() for n in table}
        out.update({n: "cam" for n in self.program.synths})
        return out

    def layer_paths(self) -> dict[str, list[str]]:
        """Each layer path of the declared models, with the models that have it (completion)."""
        owners: dict[str, list[str]] = {}
        for name, model in self.program.models.items():
            for layer in self._layers.of(name, model, self.state.models.get(name)):
                owners.setdefault(layer, []).append(name)
        return owners

    def status(self) -> dict[str, str]:
        """The current model, layer, data and image, for the toolbar."""
        model = self.current_model or "-"
        layer = "-"
        if self.current_model is not None and self.current_model in self.state.models:
            layer = self.state.models[self.current_model].layer_path or "-"
        elif self.current_model in self.program.models:
            layer = self.program.models[self.current_model].layer or "(default)"
        data = self.current_data or "-"
        image = str(self.image)
        if self.current_data is not None and self.current_data in self.state.datasets:
            image = f"{self.image}/{len(self.state.datasets[self.current_data])}"
        return {"model": model, "layer": layer, "data": data, "image": image, "cam": self.current_cam or "-"}

    def select_defaults(self) -> None:
        if self.current_model not in self.program.models:
            self.current_model = next(iter(self.program.models), None)
        if self.current_data not in self.program.datas:
            self.current_data = next(iter(self.program.datas), None)
            self.image = 0
        if self.current_cam_node is None and self.current_cam not in self.names():
            self.current_cam = next(iter(self.program.cams), None)

    # ---- entry point ------------------------------------------------------------------
    def execute(self, text: str) -> Result:
        """Run one input. Never raises (Ctrl-C included): every outcome is a `Result`."""
        if not text.strip():
            return Result("empty")
        self.history.append(text)
        self.counter += 1
        try:
            if text.lstrip().startswith(":"):
                return run_command(self, text.strip())
            return self.run_source(text)
        except KeyboardInterrupt:
            return Result("interrupted", "interrupted (Ctrl-C): partial results were kept")
        except CompileError as err:
            return Result("error", diagnostics=list(err.diagnostics))
        except CamlangError as err:
            return Result("error", diagnostics=[self.error_diagnostic(err)])
        except Exception as err:  # noqa: BLE001 - no input may kill the session
            detail = "".join(traceback.format_exception_only(type(err), err)).strip()
            return Result("internal", f"internal error, please report: {detail}")

    def error_diagnostic(self, err: CamlangError) -> Diagnostic:
        span = err.span if isinstance(err.span, Span) else NO_SPAN
        code = err.code if err.code.startswith(("E", "W")) else "E900"
        return Diagnostic(code, err.message, span, hint=err.hint)

    # ---- statements -------------------------------------------------------------------
    def run_source(self, text: str) -> Result:
        """Declarations and actions, or a bare expression (anything not starting with a keyword)."""
        if not starts_with_statement(text):
            return self.run_expression(text)
        source = SourceFile(f"<input {self.counter}>", text)
        module, syntax = parse_with_recovery(source)
        if syntax:
            return Result("error", diagnostics=syntax)
        before_actions = len(self.program.actions)
        before_diags = len(self.checker.bag.items)
        self.checker.check_module(module, source)
        diags = self.checker.bag.items[before_diags:]
        self.select_defaults()
        if any(d.is_error for d in diags):
            return Result("error", diagnostics=diags)
        lines: list[str] = []
        for stmt in module.statements:
            self.remember(stmt, Path.cwd())
            if not isinstance(stmt, s.Evaluate | s.Check | s.Export):
                self.log.append(("source", stmt.span.text))
            name = getattr(stmt, "name", None)
            if isinstance(name, s.Ident) and name.name in self.names():
                lines.append(self.describe(name.name))
        for action in self.program.actions[before_actions:]:
            lines.append(self.run_action(action))
        return Result("ok", "\n".join(x for x in lines if x), diagnostics=diags)

    def remember(self, stmt: s.Stmt, base: Path) -> None:
        """Record a declaration's text (for `:save`); imports are kept as written."""
        if isinstance(stmt, s.Import):
            line = pretty_stmt(stmt)
            if line not in self.imports:
                self.imports.append(line)
            return
        name = getattr(stmt, "name", None)
        if isinstance(name, s.Ident) and name.name in self.names():
            self.entries.pop(name.name, None)
            self.entries[name.name] = (pretty_stmt(stmt), base)

    def describe(self, name: str) -> str:
        """One line about a declared name: kind, and type or source."""
        p = self.program
        if name in p.cams and p.cams[name].node is not None:
            node = p.cams[name].node
            assert node is not None
            return f"cam {name} : {node.ty} = {p.cams[name].source_text}"
        if name in self.state.synthesized:  # a synthesis that ran: its winner is a cam
            won = self.state.synthesized[name]
            return f"cam {name} : {won.node.ty} = {won.source_text}"
        if name in p.metrics:
            m = p.metrics[name]
            return f"metric {name} : {m.node.ty}, {m.direction} {m.source_text}"
        if name in p.models:
            md = p.models[name]
            return f"model {name} = {md.kind}(...)" + (f' at "{md.layer}"' if md.layer else "")
        if name in p.datas:
            return f"data {name} = {p.datas[name].kind}(...)"
        if name in p.synths:
            return f"synthesize {name} from {p.synths[name].grammar} (runs when first used)"
        kind = self.names().get(name)
        return f"{kind} {name}" if kind else ""

    def run_action(self, action: s.Action) -> str:
        """`evaluate`, `check` or `export` typed at the prompt, as `camlang run` does them."""
        from camlang.report.terminal import checks_table, eval_table
        from camlang.run.actions import run_check, run_evaluate, syntheses_needed

        for name in syntheses_needed(self.program, action):  # each a step of its own, as in a run
            self.state.synthesize(name)
        match action:
            case s.Evaluate():
                result = run_evaluate(self.state, action)
                assert result is not None  # one process: this is rank 0
                return self._rich(eval_table(result))
            case s.Check():
                results = [run_check(self.state, p.name) for p in action.properties]
                return self._rich(checks_table(results))
            case s.Export():
                target = Path(action.path.value)
                if not target.is_absolute():
                    target = self.out_dir / target
                return self.export(action.cam.name, target)
            case s.Heatmaps() | s.Watch():
                from camlang.concepts.run_hook import run_concept_action
                from camlang.concepts.terminal import render_heatmaps

                heat = run_concept_action(self.state, action)
                return render_heatmaps(heat) if heat is not None else f"report: {self.out_dir / 'concepts'}"
        return ""

    def export(self, name: str, target: Path) -> str:
        """Write cam `name` as a standalone module (running its synthesis first if needed)."""
        from camlang.run.export import write_module

        if name not in self.names() or self.names()[name] != "cam":
            raise CamlangError(f"no cam named `{name}`", hint="`:cams` lists them")
        node, text = self.state.cam_node(name)
        path = write_module(name, node, text, target)
        return f"exported {name} to {path}"

    def _rich(self, renderable: RenderableType) -> str:
        buf = io.StringIO()
        Console(file=buf, width=110, force_terminal=False, color_system=None).print(renderable)
        return buf.getvalue().rstrip()

    # ---- bare expressions ---------------------------------------------------------------
    def type_expression(self, text: str) -> Typed | list[Diagnostic]:
        """Parse and check `text` as an expression: as a cam first, then as a metric.

        Returns the lowered node, or the diagnostics to show (positions in `text`).
        """
        source = SourceFile(f"<input {self.counter}>", text)
        wrapped = SourceFile(source.name, _WRAP + text)
        module, syntax = parse_with_recovery(wrapped)
        stmts = module.statements
        if syntax or len(stmts) != 1 or not isinstance(stmts[0], s.CamDecl):
            diags = syntax or [
                Diagnostic(
                    "E001",
                    "expected one expression",
                    Span(wrapped, len(_WRAP), len(wrapped.text)),
                    hint="declarations start with a keyword: cam, metric, model, ...",
                )
            ]
            return [_shift(d, wrapped, source) for d in diags]
        expr = stmts[0].expr
        attempts: list[list[Diagnostic]] = []
        for context in ("cam", "metric"):
            mark = len(self.checker.bag.items)
            node = self.checker.lower(expr, context)
            diags = self.checker.bag.items[mark:]
            del self.checker.bag.items[mark:]
            if node is not None and not any(d.is_error for d in diags):
                return Typed(node, context, text.strip())
            attempts.append(diags)
            if not any(d.code == "E302" for d in diags):
                break  # not a context problem: the metric reading would fail the same way
        return [_shift(d, wrapped, source) for d in attempts[0]]

    def run_expression(self, text: str) -> Result:
        """Type a bare expression and, when a model and data are declared, show its value."""
        typed = self.type_expression(text)
        if isinstance(typed, list):
            return Result("error", diagnostics=typed)
        return show_value(self, typed)


def starts_with_statement(text: str) -> bool:
    """Does `text` begin with a statement keyword (after blanks and comments)?"""
    body = "\n".join(line for line in text.splitlines() if not line.strip().startswith("#")).lstrip()
    word = body.split(maxsplit=1)[0] if body else ""
    if word not in s.STATEMENT_KEYWORDS:
        return False
    rest = body[len(word) :]
    # `check(...)`/`data[0]` style uses would be names, but every statement has a blank after it.
    return rest == "" or rest[0] in " \t\n"


def _shift(d: Diagnostic, wrapped: SourceFile, source: SourceFile) -> Diagnostic:
    """Move a diagnostic from the wrapped text (`cam _ = EXPR`) back onto the user's text."""
    if d.span.source is not wrapped:
        return d
    offset = len(wrapped.text) - len(source.text)
    n = len(source.text)
    start = min(max(0, d.span.start - offset), n)
    end = min(max(start, d.span.end - offset), n)
    message = d.message.replace("after `=`", "at the start").replace("end of file", "end of input")
    hint = None if d.hint == "give a value after `=`" else d.hint
    return dataclasses.replace(d, span=Span(source, start, end), message=message, hint=hint)


def is_incomplete(text: str) -> bool:
    """Should Enter continue the input on a new line? True for an open bracket or an
    unfinished statement or expression (the parser stopped at the end of the input)."""
    if text.lstrip().startswith(":") or not text.strip():
        return False
    body = text if starts_with_statement(text) else _WRAP + text
    _, diags = parse_with_recovery(SourceFile("<input>", body))
    return any(d.code == "E001" and d.message.startswith("unexpected end of") for d in diags)


def syntax_diagnostics(text: str) -> list[Diagnostic]:
    """Syntax errors of an input (positions in `text`), for the validator. Commands: none."""
    stripped = text.strip()
    if not stripped or stripped.startswith(":"):
        return []
    source = SourceFile("<input>", text)
    if starts_with_statement(text):
        return parse_with_recovery(source)[1]
    wrapped = SourceFile("<input>", _WRAP + text)
    return [_shift(d, wrapped, source) for d in parse_with_recovery(wrapped)[1]]
