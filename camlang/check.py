"""The checker: resolves imports and names, binds arguments, infers types, lowers to IR.

All user errors are collected as diagnostics (several per file). The result is a `Program`.
A `.cam` file never executes Python: strings are data, and names resolve only to
declarations, terminals and op-table entries.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from camlang import syntax as s
from camlang.axes import AxisError
from camlang.diagnostics import DiagnosticBag
from camlang.ir import Node
from camlang.ops import FUNCTIONS, OPS, REQUIRED, SYMBOL_OF, TERMINALS
from camlang.parser import parse_with_recovery
from camlang.paths import resolve_user_path, stdlib_root
from camlang.pretty import pretty_expr
from camlang.program import (
    CamDef,
    DataDef,
    GrammarDef,
    IndexRef,
    MetricDef,
    ModelDef,
    Program,
    PropertyDef,
    Ref,
    SynthDef,
)
from camlang.signatures import (
    DATA_SOURCES,
    MODEL_SOURCES,
    PROPERTY_KINDS,
    SYNTH_REQUIRED,
    SYNTH_SETTINGS,
    Arg,
    parse_duration,
)
from camlang.signatures import (
    REQUIRED as ARG_REQUIRED,
)
from camlang.source import NO_SPAN, SourceFile, Span

_CONTEXT_WORDS = {"cam": "a cam", "metric": "a metric"}
_OTHER_CONTEXT_HINT = {
    ("MASK", "cam"): "MASK is the ground truth; it is only available in metrics",
    ("L", "cam"): "L is the CAM itself; it is only available in metrics",
    ("A", "metric"): "metrics see the CAM as L; A and G belong to cam expressions",
    ("G", "metric"): "metrics see the CAM as L; A and G belong to cam expressions",
    ("GX", "metric"): "GX belongs to cam expressions",
    ("S_masked", "metric"): "S_masked belongs to cam expressions",
    ("S_ablated", "metric"): "S_ablated belongs to cam expressions",
}


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """`did you mean ...?` for the closest candidate, if any is close enough."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


class Checker:
    """Checks modules into one `Program`. The REPL keeps one and feeds it statements."""

    def __init__(self, program: Program, *, allow_redefine: bool = False, file_checks: bool = True) -> None:
        self.program = program
        self.bag = DiagnosticBag()
        self.allow_redefine = allow_redefine
        self.file_checks = file_checks
        self._loading: list[Path] = []
        self._loaded: set[Path] = set()
        # Declarations that failed to check: later uses stay silent instead of cascading into
        # "unknown name" errors (the first diagnostic already explains the problem).
        self._failed: set[str] = set()

    # ---- files and imports -------------------------------------------------------
    def check_source(self, source: SourceFile, *, is_main: bool = True) -> None:
        """Parse and check one file; its imports are checked first."""
        self.program.files.append(source)
        module, syntax_errors = parse_with_recovery(source)
        for d in syntax_errors:
            self.bag.add(d)
        self.check_module(module, source, is_main=is_main)

    def check_module(self, module: s.Module, source: SourceFile, *, is_main: bool = True) -> None:
        """Check parsed statements in order (imports are resolved when met)."""
        base = source.path.parent if source.path is not None else Path.cwd()
        if is_main:
            self._failed.clear()  # a REPL input must not hide names that failed in an earlier one
        for stmt in module.statements:
            try:
                self._statement(stmt, source, base, is_main)
            except AxisError as err:  # pragma: no cover - rules report through diagnostics
                self.bag.error("E301", err.message, getattr(stmt, "span", NO_SPAN), err.hint)
            name = getattr(stmt, "name", None)
            if isinstance(name, s.Ident):
                if self.program.kind_of(name.name) is None:
                    self._failed.add(name.name)
                else:
                    self._failed.discard(name.name)

    def _import(self, stmt: s.Import, base: Path) -> None:
        rel = stmt.path.value
        target = _find_import(rel, base)
        if target is None:
            self.bag.error("E103", f'cannot import "{rel}": no such file', stmt.path.span,
                           f"looked in {base} and in the installed stdlib ({stdlib_root()})")  # fmt: skip
            return
        if target in self._loading:
            chain = " -> ".join(p.name for p in self._loading[self._loading.index(target) :] + [target])
            self.bag.error("E104", f"import cycle: {chain}", stmt.path.span, "remove one of these imports")
            return
        if target in self._loaded:
            return
        self._loaded.add(target)
        self._loading.append(target)
        try:
            text = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            self.bag.error("E103", f'cannot read "{rel}": {err}', stmt.path.span)
            self._loading.pop()
            return
        self.check_source(SourceFile(_display(target), text, target), is_main=False)
        self._loading.pop()

    # ---- statements ---------------------------------------------------------------
    def _statement(self, stmt: s.Stmt, source: SourceFile, base: Path, is_main: bool) -> None:
        match stmt:
            case s.Import():
                self._import(stmt, base)
            case s.ModelDecl():
                self._model(stmt, base)
            case s.DataDecl():
                self._data(stmt, base)
            case s.CamDecl():
                self._cam(stmt, source)
            case s.MetricDecl():
                self._metric(stmt, source)
            case s.GrammarDecl():
                self._grammar(stmt)
            case s.SynthDecl():
                self._synth(stmt)
            case s.PropertyDecl():
                self._property(stmt, base)
            case s.Evaluate() | s.Check() | s.Export():
                if self._action(stmt) and is_main:
                    self.program.actions.append(stmt)
            case _:
                raise AssertionError(f"unhandled statement {stmt!r}")

    def _declare(self, ident: s.Ident, kind: str) -> bool:
        """Claim a name; report duplicates (or warn, in the REPL). False if it must be skipped."""
        name = ident.name
        if name in s.KEYWORDS:
            self.bag.error("E105", f"`{name}` is a keyword and cannot be declared", ident.span)
            return False
        if name in TERMINALS or name == "const":
            self.bag.error("E105", f"`{name}` is a built-in terminal", ident.span, "choose another name")
            return False
        existing = self.program.kind_of(name)
        if existing is not None:
            if self.allow_redefine:
                self.bag.warning("W002", f"redefining {existing} `{name}`", ident.span)
                del self.program.tables()[existing][name]
                return True
            self.bag.error("E102", f"`{name}` is already defined (as a {existing})", ident.span,
                           "each name may be declared once; rename one of them")  # fmt: skip
            return False
        return True

    def _model(self, stmt: s.ModelDecl, base: Path) -> None:
        kind = stmt.source.func.name
        spec = MODEL_SOURCES.get(kind)
        if spec is None:
            self._unknown(stmt.source.func, MODEL_SOURCES, "model source")
            return
        args = self._bind(stmt.source, spec, base)
        if args is None or not self._declare(stmt.name, "model"):
            return
        if kind == "mlp":
            sizes = args["sizes"]
            if not (len(sizes) >= 2 and all(isinstance(v, int) and v > 0 for v in sizes)):
                self.bag.error("E202", "mlp sizes must be a list of at least two positive integers",
                               stmt.source.span)  # fmt: skip
                return
        layer = stmt.layer.value if stmt.layer is not None else None
        self.program.models[stmt.name.name] = ModelDef(stmt.name.name, kind, args, layer, base, stmt.span)

    def _data(self, stmt: s.DataDecl, base: Path) -> None:
        kind = stmt.source.func.name
        spec = DATA_SOURCES.get(kind)
        if spec is None:
            self._unknown(stmt.source.func, DATA_SOURCES, "data source")
            return
        args = self._bind(stmt.source, spec, base)
        if args is None or not self._declare(stmt.name, "data"):
            return
        for key in ("count", "size", "limit"):
            if isinstance(args.get(key), int) and args[key] <= 0:
                self.bag.error("E202", f"`{key}` must be positive, got {args[key]}", stmt.source.span)
                return
        if args.get("split") not in (None, "train", "holdout"):
            self.bag.error(
                "E202", f'split must be "train" or "holdout", got "{args["split"]}"', stmt.source.span
            )
            return
        self.program.datas[stmt.name.name] = DataDef(stmt.name.name, kind, args, base, stmt.span)

    def _cam(self, stmt: s.CamDecl, source: SourceFile) -> None:
        node = self.lower(stmt.expr, "cam")
        if node is not None and not (node.ty.is_layer_map or node.ty.is_input_map):
            self.bag.error("E303", f"a cam must be a map [H, W], but this expression is {node.ty}",
                           stmt.expr.span, _reduce_hint(node))  # fmt: skip
            node = None
        if node is None or not self._declare(stmt.name, "cam"):
            return
        text = pretty_expr(stmt.expr)
        self.program.cams[stmt.name.name] = CamDef(stmt.name.name, node, text, source.name, stmt.span)

    def _metric(self, stmt: s.MetricDecl, source: SourceFile) -> None:
        node = self.lower(stmt.expr, "metric")
        if node is not None and not node.ty.is_scalar:
            self.bag.error("E304", f"a metric must be a scalar per image, but this expression is {node.ty}",
                           stmt.expr.span, "reduce it, e.g. mean(...) or sum(...)")  # fmt: skip
            node = None
        if node is None or not self._declare(stmt.name, "metric"):
            return
        text = pretty_expr(stmt.expr)
        self.program.metrics[stmt.name.name] = MetricDef(
            stmt.name.name, stmt.direction, node, text, source.name, stmt.span
        )

    def _grammar(self, stmt: s.GrammarDecl) -> None:
        if not stmt.productions:
            self.bag.error("E401", f"grammar `{stmt.name.name}` has no productions", stmt.name.span)
            return
        productions: dict[str, tuple[s.Expr, ...]] = {}
        ok = True
        for prod in stmt.productions:
            lhs = prod.lhs.name
            if lhs in OPS:
                self.bag.error(
                    "E401", f"`{lhs}` is a built-in name and cannot be a nonterminal", prod.lhs.span
                )
                ok = False
            productions[lhs] = productions.get(lhs, ()) + prod.alternatives
        nonterminals = set(productions)
        for prod in stmt.productions:
            for alt in prod.alternatives:
                ok &= self._grammar_names(alt, nonterminals, stmt)
        if ok and self._declare(stmt.name, "grammar"):
            start = stmt.productions[0].lhs.name
            self.program.grammars[stmt.name.name] = GrammarDef(stmt.name.name, start, productions, stmt.span)

    def _grammar_names(self, expr: s.Expr, nonterminals: set[str], stmt: s.GrammarDecl) -> bool:
        ok = True
        match expr:
            case s.Name(id=name):
                if name in nonterminals or name in TERMINALS or name in self.program.cams:
                    pass
                elif name in self._failed:
                    ok = False
                else:
                    hint = suggest(name, list(nonterminals) + list(TERMINALS))
                    self.bag.error("E401", f"`{name}` is neither a nonterminal of grammar `{stmt.name.name}` "
                                   "nor a terminal", expr.span, hint or "add a production for it")  # fmt: skip
                    ok = False
            case s.Call(func=func, args=args):
                if func.name not in FUNCTIONS:
                    self._unknown(func, FUNCTIONS, "op")
                    ok = False
                for a in args:
                    ok &= self._grammar_names(a, nonterminals, stmt)
            case s.BinOp(left=left, right=right):
                ok &= self._grammar_names(left, nonterminals, stmt)
                ok &= self._grammar_names(right, nonterminals, stmt)
            case s.Neg(operand=operand):
                ok &= self._grammar_names(operand, nonterminals, stmt)
            case s.Number():
                pass
            case _:
                self.bag.error(
                    "E401", "only names, numbers, ops and arithmetic may appear in a grammar", expr.span
                )
                ok = False
        return ok

    def _synth(self, stmt: s.SynthDecl) -> None:
        ok = True
        if stmt.grammar.name in self._failed:
            ok = False
        elif stmt.grammar.name not in self.program.grammars:
            hint = suggest(stmt.grammar.name, self.program.grammars)
            self.bag.error("E101", f"unknown grammar `{stmt.grammar.name}`", stmt.grammar.span,
                           hint or 'define it with `grammar NAME { ... }` or import "stdlib/grammars.cam"')  # fmt: skip
            ok = False
        settings: dict[str, Any] = {}
        seen: set[str] = set()
        for setting in stmt.settings:
            key = setting.key.name
            arg = SYNTH_SETTINGS.get(key)
            if arg is None:
                self.bag.error("E402", f"unknown setting `{key}` in synthesize", setting.key.span,
                               suggest(key, SYNTH_SETTINGS) or f"settings: {', '.join(SYNTH_SETTINGS)}")  # fmt: skip
                ok = False
                continue
            if key in seen:
                self.bag.error("E402", f"setting `{key}` given twice", setting.key.span)
                ok = False
            seen.add(key)
            value = self._literal(setting.value, arg, None)
            if value is _BAD:
                ok = False
                continue
            settings[key] = value
        for key in SYNTH_REQUIRED:
            if key not in settings and key not in seen:
                self.bag.error("E402", f"synthesize `{stmt.name.name}` is missing the required setting `{key}`",
                               stmt.name.span, f"add `{key} = ...` to the block")  # fmt: skip
                ok = False
        if "time" in settings and settings["time"] is not None:
            try:
                settings["time"] = parse_duration(settings["time"])
            except ValueError:
                self.bag.error(
                    "E402", f'bad time limit "{settings["time"]}"', stmt.span, 'write e.g. "90s" or "10m"'
                )
                ok = False
        if settings.get("strategy") not in (None, "racing", "exhaustive"):
            self.bag.error("E402", f'strategy must be "racing" or "exhaustive", got "{settings["strategy"]}"',
                           stmt.span)  # fmt: skip
            ok = False
        for key, arg in SYNTH_SETTINGS.items():
            if key not in settings and arg.default is not ARG_REQUIRED:
                settings[key] = arg.default
        if ok and self._declare(stmt.name, "cam"):
            self.program.synths[stmt.name.name] = SynthDef(
                stmt.name.name, stmt.grammar.name, settings, stmt.span
            )

    def _property(self, stmt: s.PropertyDecl, base: Path) -> None:
        kind = stmt.claim.func.name
        spec = PROPERTY_KINDS.get(kind)
        if spec is None:
            self._unknown(stmt.claim.func, PROPERTY_KINDS, "property")
            return
        args = self._bind(stmt.claim, spec, base)
        if args is None:
            return
        for key in ("eps", "delta"):
            if key in args and isinstance(args[key], int | float) and args[key] < 0:
                self.bag.error("E503", f"`{key}` must be >= 0, got {args[key]}", _kw_span(stmt.claim, key),
                               f"{key} is a distance bound")  # fmt: skip
                return
        if "timeout" in args:
            try:
                args["timeout"] = parse_duration(args["timeout"])
            except ValueError:
                self.bag.error("E503", f'bad timeout "{args["timeout"]}"', _kw_span(stmt.claim, "timeout"),
                               'write e.g. "120s" or "2m"')  # fmt: skip
                return
        if self._declare(stmt.name, "property"):
            self.program.properties[stmt.name.name] = PropertyDef(stmt.name.name, kind, args, base, stmt.span)

    def _action(self, stmt: s.Action) -> bool:
        ok = True
        match stmt:
            case s.Evaluate():
                for cam in stmt.cams:
                    ok &= self._expect(cam, ("cam",))
                ok &= self._expect(stmt.model, ("model",))
                ok &= self._expect(stmt.data, ("data",))
                for metric in stmt.metrics:
                    ok &= self._expect(metric, ("metric",))
            case s.Check():
                for prop in stmt.properties:
                    ok &= self._expect(prop, ("property",))
            case s.Export():
                ok &= self._expect(stmt.cam, ("cam",))
                if not stmt.path.value.endswith(".py"):
                    self.bag.error("E202", f'export writes a Python file; "{stmt.path.value}" does not end in .py',
                                   stmt.path.span)  # fmt: skip
                    ok = False
        return ok

    def _expect(self, ident: s.Ident, kinds: tuple[str, ...]) -> bool:
        name = ident.name
        have = self._kind(name)
        if have in kinds:
            return True
        wanted = " or ".join(kinds)
        if have is None and name in self._failed:
            return False
        if have is None:
            pool = [n for k in kinds for n in self._names_of(k)]
            self.bag.error("E101", f"unknown {wanted} `{name}`", ident.span,
                           suggest(name, pool) or f"declare it with `{kinds[0]} {name} = ...`")  # fmt: skip
        else:
            self.bag.error("E202", f"`{name}` is a {have}, not a {wanted}", ident.span)
        return False

    def _kind(self, name: str) -> str | None:
        if name in self.program.synths:
            return "cam"
        return self.program.kind_of(name)

    def _names_of(self, kind: str) -> list[str]:
        if kind == "cam":
            return list(self.program.cams) + list(self.program.synths)
        return list(self.program.tables().get(kind, {}))

    # ---- argument binding for declaration sources -----------------------------------
    def _bind(self, call: s.Call, spec: tuple[Arg, ...], base: Path | None) -> dict[str, Any] | None:
        by_name = {a.name: a for a in spec}
        values: dict[str, Any] = {}
        ok = True
        if len(call.args) > len(spec):
            self.bag.error("E201", f"{call.func.name} takes at most {len(spec)} arguments, got {len(call.args)}",
                           call.args[len(spec)].span)  # fmt: skip
            return None
        for arg, expr in zip(spec, call.args):
            values[arg.name] = (arg, expr)
        for kw in call.kwargs:
            named = by_name.get(kw.name.name)
            if named is None:
                self.bag.error("E203", f"{call.func.name} has no argument `{kw.name.name}`", kw.name.span,
                               suggest(kw.name.name, by_name) or f"arguments: {', '.join(by_name)}")  # fmt: skip
                ok = False
                continue
            if named.name in values:
                self.bag.error("E201", f"argument `{named.name}` given twice", kw.name.span)
                ok = False
                continue
            values[named.name] = (named, kw.value)
        out: dict[str, Any] = {}
        for arg in spec:
            if arg.name not in values:
                if arg.default is ARG_REQUIRED:
                    self.bag.error("E204", f"{call.func.name} needs the argument `{arg.name}`", call.span,
                                   arg.doc or None)  # fmt: skip
                    ok = False
                else:
                    out[arg.name] = arg.default
                continue
            _, expr = values[arg.name]
            value = self._literal(expr, arg, base)
            if value is _BAD:
                ok = False
            else:
                out[arg.name] = value
        return out if ok else None

    def _literal(self, expr: s.Expr, arg: Arg, base: Path | None) -> Any:
        value = _literal_value(expr)
        kinds = arg.kinds
        if isinstance(value, Ref):
            for k in ("model", "cam", "data", "metric"):
                if k in kinds:
                    return value if self._expect(s.Ident(value.name, expr.span), (k,)) else _BAD
            if "point" in kinds:
                return value if self._expect(s.Ident(value.name, expr.span), ("data",)) else _BAD
        elif isinstance(value, IndexRef) and "point" in kinds:
            return value if self._expect(s.Ident(value.name, expr.span), ("data",)) else _BAD
        elif value is not _BAD and _kind_ok(value, kinds):
            if arg.is_path and isinstance(value, str) and base is not None and self.file_checks:
                if _user_path_missing(value, base):
                    self.bag.warning("W001", f'"{value}" does not exist (relative to {base})', expr.span,
                                     "`camlang run` will fail until it does")  # fmt: skip
            return value
        elif isinstance(expr, s.Call) and expr.func.name == "vnnlib" and "point" in kinds:
            return value
        self.bag.error("E202", f"`{arg.name}` expects {_kinds_text(kinds)}, got {_describe(expr)}", expr.span)
        return _BAD

    def _unknown(self, ident: s.Ident, table: Iterable[str], what: str) -> None:
        names = list(table)
        self.bag.error("E101", f"unknown {what} `{ident.name}`", ident.span,
                       suggest(ident.name, names) or f"known: {', '.join(sorted(names))}")  # fmt: skip

    # ---- expressions -> IR ------------------------------------------------------
    def lower(self, expr: s.Expr, context: str) -> Node | None:
        """Lower an expression in `context` ("cam" or "metric") to IR, or report and return None."""
        try:
            return self._lower(expr, context)
        except _Reported:
            return None

    def _lower(self, expr: s.Expr, ctx: str) -> Node:
        b = self.program.builder
        match expr:
            case s.Number(value=value):
                return b.const(value, expr.span)
            case s.Name(id=name):
                return self._name(expr, name, ctx)
            case s.Neg(operand=operand):
                inner = self._lower(operand, ctx)
                if inner.op == "const":
                    return b.const(-inner.attr("value"), expr.span)
                return self._make("neg", (inner,), {}, expr.span, expr)
            case s.BinOp(op=op, left=left, right=right):
                from camlang.ops import BINARY_SYMBOLS

                a = self._lower(left, ctx)
                c = self._lower(right, ctx)
                return self._make(BINARY_SYMBOLS[op], (a, c), {}, expr.span, expr)
            case s.Call():
                return self._call(expr, ctx)
            case s.String() | s.Const() | s.ListExpr() | s.Index():
                self.bag.error("E202", f"{_describe(expr)} cannot be used as a value in {_CONTEXT_WORDS[ctx]}",
                               expr.span)  # fmt: skip
                raise _Reported
            case _:
                raise AssertionError(f"unhandled expression {expr!r}")

    def _name(self, expr: s.Name, name: str, ctx: str) -> Node:
        spec = TERMINALS.get(name)
        if spec is not None:
            if ctx not in spec.contexts:
                self.bag.error("E302", f"`{name}` cannot be used in {_CONTEXT_WORDS[ctx]}", expr.span,
                               _OTHER_CONTEXT_HINT.get((name, ctx)))  # fmt: skip
                raise _Reported
            return self.program.builder.make(name, (), {}, expr.span)
        if ctx == "cam" and name in self.program.cams and self.program.cams[name].node is not None:
            node = self.program.cams[name].node
            assert node is not None
            return node
        if name in FUNCTIONS:
            self.bag.error("E201", f"`{name}` is an op: call it as {FUNCTIONS[name].signature()}", expr.span)
            raise _Reported
        if name in self._failed:
            raise _Reported
        pool = [t for t, r in TERMINALS.items() if ctx in r.contexts]
        if ctx == "cam":
            pool += list(self.program.cams)
        hint = suggest(name, pool + list(FUNCTIONS))
        if hint is None and ctx == "metric" and name in self.program.cams:
            hint = f"refer to another cam's map with ref({name})"
        self.bag.error("E101", f"unknown name `{name}`", expr.span, hint)
        raise _Reported

    def _call(self, call: s.Call, ctx: str) -> Node:
        name = call.func.name
        spec = FUNCTIONS.get(name)
        if spec is None:
            extra = list(self.program.cams) if ctx == "cam" else []
            hint = suggest(name, list(FUNCTIONS) + extra)
            self.bag.error("E101", f"unknown op `{name}`", call.func.span, hint)
            raise _Reported
        if ctx not in spec.contexts:
            self.bag.error("E302", f"`{name}` cannot be used in {_CONTEXT_WORDS[ctx]}", call.func.span,
                           f"{name} is available in: {', '.join(sorted(spec.contexts))}s")  # fmt: skip
            raise _Reported
        params = spec.params
        bound: dict[str, s.Expr] = {}
        if len(call.args) > len(params):
            self.bag.error("E201", f"{spec.signature()} takes {len(params)} argument"
                           f"{'s' if len(params) != 1 else ''}, got {len(call.args) + len(call.kwargs)}",
                           call.span)  # fmt: skip
            raise _Reported
        for p, a in zip(params, call.args):
            bound[p.name] = a
        for kw in call.kwargs:
            if kw.name.name not in {p.name for p in params}:
                self.bag.error("E203", f"{name} has no argument `{kw.name.name}`", kw.name.span,
                               f"signature: {spec.signature()}")  # fmt: skip
                raise _Reported
            if kw.name.name in bound:
                self.bag.error("E201", f"argument `{kw.name.name}` given twice", kw.name.span)
                raise _Reported
            bound[kw.name.name] = kw.value
        operands: list[Node] = []
        attrs: dict[str, Any] = {}
        for p in params:
            if p.name not in bound:
                if p.default is REQUIRED:
                    self.bag.error("E201", f"{spec.signature()} is missing `{p.name}`", call.span)
                    raise _Reported
                continue
            arg = bound[p.name]
            if p.kind == "tensor":
                operands.append(self._lower(arg, ctx))
            else:
                attrs[p.name] = self._static(arg, p.kind, p.name, spec.name)
        return self._make(name, tuple(operands), attrs, call.span, call)

    def _static(self, expr: s.Expr, kind: str, pname: str, op: str) -> Any:
        if kind == "cam":
            if isinstance(expr, s.Name) and self._kind(expr.id) == "cam":
                return expr.id
            if isinstance(expr, s.Name) and expr.id in self._failed:
                raise _Reported
            self.bag.error("E202", f"{op}: `{pname}` must name a cam, got {_describe(expr)}", expr.span,
                           suggest(getattr(expr, "id", ""), self._names_of("cam")))  # fmt: skip
            raise _Reported
        value = _literal_value(expr)
        if kind == "string" and isinstance(value, str):
            return value
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind == "value" and isinstance(value, int | float | str) and not isinstance(value, bool):
            return float(value) if isinstance(value, int) else value
        word = {"int": "an integer literal", "number": "a number literal", "string": "a string literal",
                "value": "a number or string literal"}[kind]  # fmt: skip
        self.bag.error("E202", f"{op}: `{pname}` must be {word}, got {_describe(expr)}", expr.span)
        raise _Reported

    def _make(self, op: str, args: tuple[Node, ...], attrs: dict[str, Any], span: Span, expr: s.Expr) -> Node:
        try:
            return self.program.builder.make(op, args, attrs, span)
        except AxisError as err:
            shown = f"`{SYMBOL_OF[op]}`" if op in SYMBOL_OF else op
            message = err.message if err.message.startswith(op) else f"{shown} {err.message}"
            self.bag.error("E301", message, span, err.hint)
            raise _Reported from None


class _Reported(Exception):
    """A diagnostic was recorded; unwind the current expression."""


_BAD: Any = object()


def _literal_value(expr: s.Expr) -> Any:
    match expr:
        case s.Number(value=v):
            return v
        case s.Neg(operand=s.Number(value=v)):
            return -v
        case s.String(value=v):
            return v
        case s.Const(value=v):
            return v
        case s.Name(id=name):
            return Ref(name, expr.span)
        case s.Index(base=base, index=s.Number(value=int() as i)):
            return IndexRef(base.id, i, expr.span)
        case s.ListExpr(items=items):
            values = [_literal_value(i) for i in items]
            return _BAD if any(v is _BAD or isinstance(v, Ref | IndexRef) for v in values) else values
        case s.Call(func=func, args=(s.String(value=path),)) if func.name == "vnnlib":
            return ("vnnlib", path)
        case _:
            return _BAD


def _find_import(rel: str, base: Path) -> Path | None:
    """The file an import names, relative to the importing file or to the stdlib; None if absent."""
    for root in (base, stdlib_root()):
        try:  # a NUL byte or an over-long name is a user error, reported as "no such file"
            candidate = (root / rel).resolve()
            if candidate.is_file():
                return candidate
        except (OSError, ValueError):
            continue
    return None


def _user_path_missing(value: str, base: Path) -> bool:
    try:
        return resolve_user_path(value, base) is None
    except (OSError, ValueError):  # NUL bytes, over-long names: no such file can exist
        return True


def _kind_ok(value: Any, kinds: tuple[str, ...]) -> bool:
    if value is None:
        return "none" in kinds
    if isinstance(value, bool):
        return "bool" in kinds
    if isinstance(value, int):
        return bool({"int", "number"} & set(kinds))
    if isinstance(value, float):
        return "number" in kinds
    if isinstance(value, str):
        return "string" in kinds
    if isinstance(value, list):
        return "list" in kinds or "point" in kinds
    if isinstance(value, tuple) and value and value[0] == "vnnlib":
        return "point" in kinds
    return "any" in kinds


def _kinds_text(kinds: tuple[str, ...]) -> str:
    words = {"string": "a string", "int": "an integer", "number": "a number", "bool": "true or false",
             "list": "a list", "none": "none", "model": "a model name", "cam": "a cam name",
             "data": "a data name", "metric": "a metric name",
             "point": 'a list of numbers, data[i] or vnnlib("file")', "any": "a value"}  # fmt: skip
    return " or ".join(words.get(k, k) for k in kinds)


def _describe(expr: s.Expr) -> str:
    match expr:
        case s.Number(value=v):
            return f"the number {v}"
        case s.String(value=v):
            return f'the string "{v}"'
        case s.Const(value=v):
            return "none" if v is None else str(v).lower()
        case s.Name(id=n):
            return f"the name `{n}`"
        case s.ListExpr():
            return "a list"
        case s.Index():
            return "an indexed value"
        case _:
            return "an expression"


def _kw_span(call: s.Call, name: str) -> Span:
    for kw in call.kwargs:
        if kw.name.name == name:
            return kw.value.span
    return call.span


def _reduce_hint(node: Node) -> str | None:
    t = node.ty
    if t.has_channels and t.has_grid:
        return "reduce the channels, e.g. sum_c(...)"
    if t.is_scalar or (t.has_channels and not t.has_grid):
        return "this has no spatial grid: multiply channel weights by A before sum_c"
    return None


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def check_file(path: str | Path, *, file_checks: bool = True) -> Program:
    """Parse and check a `.cam` file (and its imports). Diagnostics are in `program.diagnostics`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        from camlang.errors import CamlangError

        raise CamlangError(f"no such file: {p}", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as err:
        from camlang.errors import CamlangError

        raise CamlangError(f"cannot read {p}: {err}") from None
    return check_text(text, str(p), p.resolve(), file_checks=file_checks)


def check_text(
    text: str, name: str = "<input>", path: Path | None = None, *, file_checks: bool = True
) -> Program:
    """Parse and check source text."""
    source = SourceFile(name, text, path)
    program = Program(source)
    checker = Checker(program, file_checks=file_checks)
    if path is not None:
        checker._loaded.add(path)
        checker._loading.append(path)
    checker.check_source(source)
    program.diagnostics = checker.bag.items
    return program
