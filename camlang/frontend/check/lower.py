"""Lowering cam and metric expressions to IR: names, op calls, static attributes, types.

The interning builder checks each node's types as it is made; an `AxisError` becomes a
diagnostic (E301, or E305/E306 when layers mix) at the expression that caused it. `e @ "layer"`
lowers to `e` with its untagged layer terminals retagged (`ir.retag`): no `@` node survives.
"""

from __future__ import annotations

from typing import Any

from camlang.frontend import syntax as s
from camlang.frontend.check.base import CheckerBase, Reported, suggest
from camlang.frontend.check.binding import BAD, STATIC_WORDS, StaticValue, bind_call, describe, static_value
from camlang.frontend.ir import Node, retag
from camlang.frontend.op_table import BINARY_SYMBOLS, FUNCTIONS, SYMBOL_OF, TERMINALS
from camlang.frontend.pretty import pretty_expr
from camlang.frontend.source import Span
from camlang.frontend.value_types import AxisError

_CONTEXT_WORDS = {"cam": "a cam", "metric": "a metric"}


class ExpressionLowering(CheckerBase):
    """Turns AST expressions into interned IR nodes of the program's builder."""

    def lower(self, expr: s.Expr, context: str) -> Node | None:
        """Lower an expression in `context` ("cam" or "metric") to IR, or report and return None."""
        try:
            return self._lower(expr, context)
        except Reported:
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
                return self._make("neg", (inner,), {}, expr.span)
            case s.BinOp(op=op, left=left, right=right):
                a = self._lower(left, ctx)
                c = self._lower(right, ctx)
                return self._make(BINARY_SYMBOLS[op], (a, c), {}, expr.span)
            case s.Call():
                return self._call(expr, ctx)
            case s.AtLayer():
                return self._at_layer(expr, ctx)
            case s.String() | s.Const() | s.ListExpr() | s.Index():
                self.bag.error(
                    "E202", f"{describe(expr)} cannot be used as a value in {_CONTEXT_WORDS[ctx]}", expr.span
                )
                raise Reported
            case _:
                raise AssertionError(f"unhandled expression {expr!r}")

    def _at_layer(self, expr: s.AtLayer, ctx: str) -> Node:
        """`e @ "layer"`: lower `e`, then read its untagged layer terminals at that layer."""
        inner = self._lower(expr.expr, ctx)
        if not isinstance(expr.layer, s.String) or not expr.layer.value:
            got = f"`{expr.layer.id}`" if isinstance(expr.layer, s.Name) else "an empty name"
            self.bag.error(
                "E308",
                f"`@` takes a layer name in quotes, got {got}",
                expr.layer.span,
                'write A@"layer2"; inside a grammar, `@` may also take a nonterminal whose '
                "alternatives are all layer names (a layer hole)",
            )
            raise Reported
        layer = expr.layer.value
        try:
            node = retag(self.program.builder, inner, layer)
        except AxisError as err:
            self.bag.error(err.code, err.message, expr.span, err.hint)
            raise Reported from None
        if node is inner:
            self.bag.warning(
                "W003",
                f'`@"{layer}"` has no effect: `{pretty_expr(expr.expr)}` reads no untagged layer terminal',
                expr.span,
                "only A, G, S_masked and S_ablated are read at a layer; an inner tag wins over an outer one",
            )
        return node

    def _name(self, expr: s.Name, name: str, ctx: str) -> Node:
        spec = TERMINALS.get(name)
        if spec is not None:
            if ctx not in spec.contexts:
                self.bag.error(
                    "E302", f"`{name}` cannot be used in {_CONTEXT_WORDS[ctx]}", expr.span, spec.context_hint
                )
                raise Reported
            return self.program.builder.make(name, (), {}, expr.span)
        if ctx == "cam" and name in self.program.cams and self.program.cams[name].node is not None:
            node = self.program.cams[name].node
            assert node is not None
            return node
        if name in FUNCTIONS:
            self.bag.error("E201", f"`{name}` is an op: call it as {FUNCTIONS[name].signature()}", expr.span)
            raise Reported
        if name in self._failed:
            raise Reported
        pool = [t for t, r in TERMINALS.items() if ctx in r.contexts]
        if ctx == "cam":
            pool += list(self.program.cams)
        hint = suggest(name, pool + list(FUNCTIONS))
        if hint is None and ctx == "metric" and name in self.program.cams:
            hint = f"refer to another cam's map with ref({name})"
        self.bag.error("E101", f"unknown name `{name}`", expr.span, hint)
        raise Reported

    def _call(self, call: s.Call, ctx: str) -> Node:
        name = call.func.name
        spec = FUNCTIONS.get(name)
        if spec is None:
            extra = list(self.program.cams) if ctx == "cam" else []
            hint = suggest(name, list(FUNCTIONS) + extra)
            self.bag.error("E101", f"unknown op `{name}`", call.func.span, hint)
            raise Reported
        if ctx not in spec.contexts:
            self.bag.error(
                "E302",
                f"`{name}` cannot be used in {_CONTEXT_WORDS[ctx]}",
                call.func.span,
                f"{name} is available in: {', '.join(sorted(spec.contexts))}s",
            )
            raise Reported
        params = spec.params
        binding = bind_call(call, params)
        problem = binding.first("too_many", "unknown", "twice")
        if problem is not None:
            match problem.kind:
                case "too_many":
                    self.bag.error(
                        "E201",
                        f"{spec.signature()} takes {len(params)} argument"
                        f"{'s' if len(params) != 1 else ''}, got {len(call.args) + len(call.kwargs)}",
                        call.span,
                    )
                case "unknown":
                    self.bag.error(
                        "E203",
                        f"{name} has no argument `{problem.name}`",
                        problem.span,
                        f"signature: {spec.signature()}",
                    )
                case _:
                    self.bag.error("E201", f"argument `{problem.name}` given twice", problem.span)
            raise Reported
        # Missing parameters are reported where they fall, after the operands before them.
        missing = {m.name for m in binding.problems if m.kind == "missing"}
        operands: list[Node] = []
        attrs: dict[str, Any] = {}
        for p in params:
            arg = binding.values.get(p.name)
            if arg is None:
                if p.name in missing:
                    self.bag.error("E201", f"{spec.signature()} is missing `{p.name}`", call.span)
                    raise Reported
                continue
            if p.kind == "tensor":
                operands.append(self._lower(arg, ctx))
            else:
                attrs[p.name] = self._static(arg, p.kind, p.name, spec.name)
        return self._make(name, tuple(operands), attrs, call.span)

    def _static(self, expr: s.Expr, kind: str, pname: str, op: str) -> StaticValue:
        if kind == "cam":
            if isinstance(expr, s.Name) and self._kind(expr.id) == "cam":
                return expr.id
            if isinstance(expr, s.Name) and expr.id in self._failed:
                raise Reported
            self.bag.error(
                "E202",
                f"{op}: `{pname}` must name a cam, got {describe(expr)}",
                expr.span,
                suggest(getattr(expr, "id", ""), self._names_of("cam")),
            )
            raise Reported
        value = static_value(expr, kind)
        if value is not BAD:
            return value
        self.bag.error(
            "E202", f"{op}: `{pname}` must be {STATIC_WORDS[kind]}, got {describe(expr)}", expr.span
        )
        raise Reported

    def _make(self, op: str, args: tuple[Node, ...], attrs: dict[str, Any], span: Span) -> Node:
        try:
            return self.program.builder.make(op, args, attrs, span)
        except AxisError as err:
            shown = f"`{SYMBOL_OF[op]}`" if op in SYMBOL_OF else op
            message = err.message if err.message.startswith(op) else f"{shown} {err.message}"
            self.bag.error(err.code, message, span, err.hint)
            raise Reported from None
