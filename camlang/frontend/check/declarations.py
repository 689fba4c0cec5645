"""Declaration checks: models, data, cams, metrics, grammars, synthesize blocks, properties, actions.

Declaration sources bind their arguments against the `signatures.py` tables; each argument's
literal kind and value check (`Arg.check`) live there, so this module only says which
diagnostic code and span a failed check is reported with.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from camlang.frontend import syntax as s
from camlang.frontend.check.base import CheckerBase, suggest
from camlang.frontend.check.binding import (
    BAD,
    LiteralValue,
    NotLiteral,
    bind_call,
    describe,
    kind_ok,
    kinds_text,
    literal_value,
)
from camlang.frontend.check.layer_options import layer_options
from camlang.frontend.ir import Node
from camlang.frontend.layer_holes import layer_nonterminals
from camlang.frontend.op_table import FUNCTIONS, OPS, TERMINALS
from camlang.frontend.pretty import pretty_expr
from camlang.frontend.program import (
    CamDef,
    DataDef,
    GrammarDef,
    IndexRef,
    MetricDef,
    ModelDef,
    PropertyDef,
    Ref,
    SynthDef,
)
from camlang.frontend.signatures import (
    DATA_SOURCES,
    MODEL_SOURCES,
    PROPERTY_KINDS,
    REQUIRED,
    SYNTH_REQUIRED,
    SYNTH_SETTINGS,
    Arg,
    Problem,
)
from camlang.frontend.source import SourceFile, Span
from camlang.paths import resolve_user_path


class DeclarationChecks(CheckerBase):
    """One method per declaration statement; each adds a definition to the program or reports."""

    def _model(self, stmt: s.ModelDecl, base: Path) -> None:
        kind = stmt.source.func.name
        spec = MODEL_SOURCES.get(kind)
        if spec is None:
            self._unknown(stmt.source.func, MODEL_SOURCES, "model source")
            return
        args = self._bind(stmt.source, spec, base)
        if args is None or not self._declare(stmt.name, "model"):
            return
        for _, (message, hint) in _value_problems(args, spec):
            self.bag.error("E202", message, stmt.source.span, hint)
            return
        layer = stmt.layer.value if stmt.layer is not None else None
        options = layer_options(stmt.options, self.bag)
        if options is None:
            return
        layout, fuse = options
        self.program.models[stmt.name.name] = ModelDef(
            stmt.name.name,
            kind,
            args,
            layer,
            base,
            stmt.span,
            tuple(p.value for p in stmt.more_layers),
            layout,
            fuse,
        )

    def _data(self, stmt: s.DataDecl, base: Path) -> None:
        kind = stmt.source.func.name
        spec = DATA_SOURCES.get(kind)
        if spec is None:
            self._unknown(stmt.source.func, DATA_SOURCES, "data source")
            return
        args = self._bind(stmt.source, spec, base)
        if args is None or not self._declare(stmt.name, "data"):
            return
        for _, (message, hint) in _value_problems(args, spec):
            self.bag.error("E202", message, stmt.source.span, hint)
            return
        self.program.datas[stmt.name.name] = DataDef(stmt.name.name, kind, args, base, stmt.span)

    def _cam(self, stmt: s.CamDecl, source: SourceFile) -> None:
        node = self.lower(stmt.expr, "cam")
        if node is not None and not (node.ty.is_layer_map or node.ty.is_input_map):
            self.bag.error(
                "E303",
                f"a cam must be a map [H, W], but this expression is {node.ty}",
                stmt.expr.span,
                _reduce_hint(node),
            )
            node = None
        if node is None or not self._declare(stmt.name, "cam"):
            return
        text = pretty_expr(stmt.expr)
        self.program.cams[stmt.name.name] = CamDef(stmt.name.name, node, text, source.name, stmt.span)

    def _metric(self, stmt: s.MetricDecl, source: SourceFile) -> None:
        node = self.lower(stmt.expr, "metric")
        if node is not None and not node.ty.is_scalar:
            self.bag.error(
                "E304",
                f"a metric must be a scalar per image, but this expression is {node.ty}",
                stmt.expr.span,
                "reduce it, e.g. mean(...) or sum(...)",
            )
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
        holes = layer_nonterminals(productions)
        ok &= self._layer_productions(stmt, holes)
        for prod in stmt.productions:
            if prod.lhs.name in holes:
                continue
            for alt in prod.alternatives:
                if not isinstance(alt, s.String):  # a stray layer name: reported above
                    ok &= self._grammar_names(alt, nonterminals, stmt, holes)
        if ok and self._declare(stmt.name, "grammar"):
            start = stmt.productions[0].lhs.name
            self.program.grammars[stmt.name.name] = GrammarDef(stmt.name.name, start, productions, stmt.span)

    def _layer_productions(self, stmt: s.GrammarDecl, holes: dict[str, tuple[str, ...]]) -> bool:
        """Layer holes: all-string productions, never the start; strings appear nowhere else."""
        ok = True
        start = stmt.productions[0].lhs
        if start.name in holes:
            self.bag.error("E401", f"a grammar's start `{start.name}` cannot be a layer hole", start.span)
            ok = False
        for prod in stmt.productions:
            strings = [a for a in prod.alternatives if isinstance(a, s.String)]
            if strings and prod.lhs.name not in holes:
                self.bag.error(
                    "E401",
                    f"grammar `{stmt.name.name}`: `{prod.lhs.name}` mixes layer names and other alternatives",
                    strings[0].span,
                    "a layer hole's alternatives are all layer names in quotes",
                )
                ok = False
        return ok

    def _grammar_names(
        self, expr: s.Expr, nonterminals: set[str], stmt: s.GrammarDecl, holes: dict[str, tuple[str, ...]]
    ) -> bool:
        ok = True
        match expr:
            case s.AtLayer(expr=inner, layer=layer):
                ok &= self._grammar_names(inner, nonterminals, stmt, holes)
                if isinstance(layer, s.Name) and layer.id not in holes:
                    self.bag.error(
                        "E308",
                        f"`@` takes a layer name in quotes or a layer hole, got `{layer.id}`",
                        layer.span,
                        f'write "layer2", or a nonterminal of grammar `{stmt.name.name}` whose '
                        "alternatives are all layer names",
                    )
                    ok = False
            case s.Name(id=name) if name in holes:
                self.bag.error(
                    "E401",
                    f"layer hole `{name}` can only follow `@`",
                    expr.span,
                    f"write e@{name} to read e's layer terminals at the layer it chooses",
                )
                ok = False
            case s.Name(id=name):
                if name in nonterminals or name in TERMINALS or name in self.program.cams:
                    pass
                elif name in self._failed:
                    ok = False
                else:
                    hint = suggest(name, list(nonterminals) + list(TERMINALS))
                    self.bag.error(
                        "E401",
                        f"`{name}` is neither a nonterminal of grammar `{stmt.name.name}` nor a terminal",
                        expr.span,
                        hint or "add a production for it",
                    )
                    ok = False
            case s.Call(func=func, args=args):
                if func.name not in FUNCTIONS:
                    self._unknown(func, FUNCTIONS, "op")
                    ok = False
                for a in args:
                    ok &= self._grammar_names(a, nonterminals, stmt, holes)
            case s.BinOp(left=left, right=right):
                ok &= self._grammar_names(left, nonterminals, stmt, holes)
                ok &= self._grammar_names(right, nonterminals, stmt, holes)
            case s.Neg(operand=operand):
                ok &= self._grammar_names(operand, nonterminals, stmt, holes)
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
            self.bag.error(
                "E101",
                f"unknown grammar `{stmt.grammar.name}`",
                stmt.grammar.span,
                hint or 'define it with `grammar NAME { ... }` or import "stdlib/grammars.cam"',
            )
            ok = False
        settings: dict[str, Any] = {}
        seen: set[str] = set()
        for setting in stmt.settings:
            key = setting.key.name
            arg = SYNTH_SETTINGS.get(key)
            if arg is None:
                self.bag.error(
                    "E402",
                    f"unknown setting `{key}` in synthesize",
                    setting.key.span,
                    suggest(key, SYNTH_SETTINGS) or f"settings: {', '.join(SYNTH_SETTINGS)}",
                )
                ok = False
                continue
            if key in seen:
                self.bag.error("E402", f"setting `{key}` given twice", setting.key.span)
                ok = False
            seen.add(key)
            value = self._literal(setting.value, arg, None)
            if value is BAD:
                ok = False
                continue
            settings[key] = value
        for key in SYNTH_REQUIRED:
            if key not in settings and key not in seen:
                self.bag.error(
                    "E402",
                    f"synthesize `{stmt.name.name}` is missing the required setting `{key}`",
                    stmt.name.span,
                    f"add `{key} = ...` to the block",
                )
                ok = False
        for _, (message, hint) in _value_problems(settings, tuple(SYNTH_SETTINGS.values())):
            self.bag.error("E402", message, stmt.span, hint)
            ok = False
        for key, arg in SYNTH_SETTINGS.items():
            if key not in settings and arg.default is not REQUIRED:
                settings[key] = arg.default
        if ok and self._declare(stmt.name, "cam"):
            settings = {k: SYNTH_SETTINGS[k].convert(v) for k, v in settings.items()}
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
        for arg, (message, hint) in _value_problems(args, spec):
            self.bag.error("E503", message, _kw_span(stmt.claim, arg.name), hint)
            return
        args = {a.name: a.convert(args[a.name]) for a in spec if a.name in args}
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
                if stmt.concept is not None and ok:
                    ok &= self._concept_target(stmt, stmt.concept)
            case s.Check():
                for prop in stmt.properties:
                    ok &= self._expect(prop, ("property",))
            case s.Export():
                ok &= self._expect(stmt.cam, ("cam",))
                if not stmt.path.value.endswith(".py"):
                    self.bag.error(
                        "E202",
                        f'export writes a Python file; "{stmt.path.value}" does not end in .py',
                        stmt.path.span,
                    )
                    ok = False
        return ok

    # ---- arguments of declaration sources -------------------------------------------
    def _bind(self, call: s.Call, spec: tuple[Arg, ...], base: Path | None) -> dict[str, Any] | None:
        """Bind a source call against its signature and read each argument's literal."""
        binding = bind_call(call, spec)
        by_name = {a.name: a for a in spec}
        fname = call.func.name
        missing: set[str] = set()
        ok = True
        for problem in binding.problems:
            match problem.kind:
                case "too_many":
                    self.bag.error(
                        "E201",
                        f"{fname} takes at most {len(spec)} arguments, got {len(call.args)}",
                        problem.span,
                    )
                    return None
                case "unknown":
                    self.bag.error(
                        "E203",
                        f"{fname} has no argument `{problem.name}`",
                        problem.span,
                        suggest(problem.name, by_name) or f"arguments: {', '.join(by_name)}",
                    )
                    ok = False
                case "twice":
                    self.bag.error("E201", f"argument `{problem.name}` given twice", problem.span)
                    ok = False
                case "missing":
                    missing.add(problem.name)
        out: dict[str, Any] = {}
        for arg in spec:
            if arg.name in missing:
                self.bag.error("E204", f"{fname} needs the argument `{arg.name}`", call.span, arg.doc or None)
                ok = False
            elif arg.name not in binding.values:
                out[arg.name] = arg.default
            else:
                value = self._literal(binding.values[arg.name], arg, base)
                if value is BAD:
                    ok = False
                else:
                    out[arg.name] = value
        return out if ok else None

    def _literal(self, expr: s.Expr, arg: Arg, base: Path | None) -> LiteralValue | NotLiteral:
        value = literal_value(expr)
        kinds = arg.kinds
        if isinstance(value, Ref):
            for k in ("model", "cam", "data", "metric", "concepts"):
                if k in kinds:
                    return value if self._expect(s.Ident(value.name, expr.span), (k,)) else BAD
            if "point" in kinds:
                return value if self._expect(s.Ident(value.name, expr.span), ("data",)) else BAD
        elif isinstance(value, IndexRef) and "point" in kinds:
            return value if self._expect(s.Ident(value.name, expr.span), ("data",)) else BAD
        elif value is not BAD and kind_ok(value, kinds):
            if arg.is_path and isinstance(value, str) and base is not None and self.file_checks:
                if _user_path_missing(value, base):
                    self.bag.warning(
                        "W001",
                        f'"{value}" does not exist (relative to {base})',
                        expr.span,
                        "`camlang run` will fail until it does",
                    )
            return value
        elif isinstance(expr, s.Call) and expr.func.name == "vnnlib" and "point" in kinds:
            return value
        self.bag.error("E202", f"`{arg.name}` expects {kinds_text(kinds)}, got {describe(expr)}", expr.span)
        return BAD


def _value_problems(values: dict[str, Any], spec: tuple[Arg, ...]) -> Iterator[tuple[Arg, Problem]]:
    """The value checks (`Arg.check`) that bound values fail, in signature order."""
    for arg in spec:
        if arg.name in values:
            problem = arg.problem(values[arg.name])
            if problem is not None:
                yield arg, problem


def _user_path_missing(value: str, base: Path) -> bool:
    try:
        return resolve_user_path(value, base) is None
    except (OSError, ValueError):  # NUL bytes, over-long names: no such file can exist
        return True


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
