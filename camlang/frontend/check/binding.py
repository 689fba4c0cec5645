"""The one argument binder, and the literal values a call's arguments may hold.

Declaration sources (`signatures.py` rows), op calls (`ops.py` rows) and grammar alternatives
(`synth/enumeration.py`) all bind a call's positional and keyword arguments to parameters with
`bind_call`. It only matches arguments to names; each caller turns the problems it finds into
its own diagnostics and interprets the bound expressions (literals, IR operands or templates).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, TypeAlias

from camlang.frontend import syntax as s
from camlang.frontend.program import IndexRef, Ref
from camlang.frontend.signatures import REQUIRED
from camlang.frontend.source import Span

ProblemKind = Literal["too_many", "unknown", "twice", "missing"]


class Parameter(Protocol):
    """What the binder needs of a parameter: `signatures.Arg` and `ops.Param` both qualify."""

    @property
    def name(self) -> str: ...

    @property
    def default(self) -> object: ...


@dataclass(frozen=True, slots=True)
class BindProblem:
    """One way a call does not fit its parameters; `name` is the parameter or keyword concerned."""

    kind: ProblemKind
    name: str
    span: Span


@dataclass(slots=True)
class Binding:
    """The argument expression given for each parameter name, and what did not fit.

    Problems come in the order a reader meets them: surplus positional arguments first (and
    then nothing else), then keyword arguments left to right, then missing required parameters
    in parameter order.
    """

    values: dict[str, s.Expr] = field(default_factory=dict)
    problems: list[BindProblem] = field(default_factory=list)

    def first(self, *kinds: ProblemKind) -> BindProblem | None:
        """The first problem of one of `kinds`, if any."""
        return next((p for p in self.problems if p.kind in kinds), None)


def bind_call(call: s.Call, params: Sequence[Parameter]) -> Binding:
    """Match `call`'s positional and keyword arguments to `params`."""
    binding = Binding()
    if len(call.args) > len(params):
        binding.problems.append(BindProblem("too_many", call.func.name, call.args[len(params)].span))
        return binding
    names = {p.name for p in params}
    for p, expr in zip(params, call.args):
        binding.values[p.name] = expr
    for kw in call.kwargs:
        key = kw.name.name
        if key not in names:
            binding.problems.append(BindProblem("unknown", key, kw.name.span))
        elif key in binding.values:
            binding.problems.append(BindProblem("twice", key, kw.name.span))
        else:
            binding.values[key] = kw.value
    for p in params:
        if p.name not in binding.values and p.default is REQUIRED:
            binding.problems.append(BindProblem("missing", p.name, call.span))
    return binding


# ---- literal values -----------------------------------------------------------


class NotLiteral(enum.Enum):
    """The type of `BAD`."""

    BAD = "not a literal"


#: Marks an expression that is not a literal value.
BAD: Final = NotLiteral.BAD

#: A literal argument's value: a number, string, bool or none, a reference to a declaration
#: (`m`, `data[3]`), a list of plain literals, or a `vnnlib("file")` point.
LiteralValue: TypeAlias = (
    int | float | str | bool | None | Ref | IndexRef | list["LiteralValue"] | tuple[Literal["vnnlib"], str]
)
#: An op's static attribute: an integer, a number or a string.
StaticValue: TypeAlias = int | float | str


def literal_value(expr: s.Expr) -> LiteralValue | NotLiteral:
    """The value of a literal argument (numbers, strings, lists, references), or `BAD`."""
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
            values = [literal_value(i) for i in items]
            plain: list[LiteralValue] = [v for v in values if not isinstance(v, NotLiteral | Ref | IndexRef)]
            return plain if len(plain) == len(values) else BAD
        case s.Call(func=func, args=(s.String(value=path),)) if func.name == "vnnlib":
            return ("vnnlib", path)
        case _:
            return BAD


def static_value(expr: s.Expr, kind: str) -> StaticValue | NotLiteral:
    """An op's static attribute of `kind` ("int", "number", "string", "value") from a literal, or `BAD`."""
    value = literal_value(expr)
    if isinstance(value, bool):
        return BAD
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "int" and isinstance(value, int):
        return value
    if kind == "number" and isinstance(value, int | float):
        return float(value)
    if kind == "value" and isinstance(value, int | float | str):
        return float(value) if isinstance(value, int) else value
    return BAD


STATIC_WORDS = {
    "int": "an integer literal",
    "number": "a number literal",
    "string": "a string literal",
    "value": "a number or string literal",
}


def kind_ok(value: LiteralValue, kinds: tuple[str, ...]) -> bool:
    """Whether a literal value is one of the declaration-argument `kinds`."""
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


def kinds_text(kinds: tuple[str, ...]) -> str:
    """`a string or none`: the kinds an argument accepts, in words."""
    words = {
        "string": "a string",
        "int": "an integer",
        "number": "a number",
        "bool": "true or false",
        "list": "a list",
        "none": "none",
        "model": "a model name",
        "cam": "a cam name",
        "data": "a data name",
        "metric": "a metric name",
        "concepts": "a concept set name",
        "point": 'a list of numbers, data[i] or vnnlib("file")',
        "any": "a value",
    }
    return " or ".join(words.get(k, k) for k in kinds)


def describe(expr: s.Expr) -> str:
    """What an argument expression is, for error messages (`the string "x"`)."""
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
