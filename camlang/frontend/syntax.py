"""The typed AST: frozen, slotted dataclasses whose spans do not take part in equality.

The parser (`camlang.frontend.parser`) is the only producer of these nodes from text; the
pretty-printer (`camlang.frontend.pretty`) turns them back into canonical source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from camlang.frontend.source import NO_SPAN, Span
from camlang.paths import grammar_path


@dataclass(frozen=True, slots=True)
class Ident:
    """A name as written in the source (declared or referenced)."""

    name: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


# ---- expressions -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Number:
    value: int | float
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class String:
    value: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Const:
    """`none`, `true` or `false`."""

    value: None | bool
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class KwArg:
    name: Ident
    value: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Call:
    func: Ident
    args: tuple[Expr, ...] = ()
    kwargs: tuple[KwArg, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)

    def kwarg(self, name: str) -> Expr | None:
        """The value of keyword argument `name`, if given."""
        for kw in self.kwargs:
            if kw.name.name == name:
                return kw.value
        return None


@dataclass(frozen=True, slots=True)
class Index:
    """`name[expr]`, e.g. `test[3]` (an image of a data set)."""

    base: Name
    index: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


BinOpSymbol = Literal["+", "-", "*", "/", "==", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True, slots=True)
class BinOp:
    op: BinOpSymbol
    left: Expr
    right: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class AtLayer:
    """`expr @ "layer"`: the untagged layer terminals of `expr` read at that layer.

    `layer` is a `String`, or (inside a grammar) a `Name` of a layer hole.
    """

    expr: Expr
    layer: String | Name
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


Expr: TypeAlias = Number | String | Const | Name | Call | Index | ListExpr | BinOp | Neg | AtLayer


# ---- statements ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Import:
    path: String
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ModelDecl:
    name: Ident
    source: Call
    layer: String | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    # `at ["a", "b"] tokens(prefix = 1) fuse("max")`: layers after the first, then layer options
    more_layers: tuple[String, ...] = ()
    options: tuple[Call, ...] = ()


@dataclass(frozen=True, slots=True)
class DataDecl:
    name: Ident
    source: Call
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CamDecl:
    name: Ident
    expr: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


Direction = Literal["minimize", "maximize"]


@dataclass(frozen=True, slots=True)
class MetricDecl:
    name: Ident
    direction: Direction
    expr: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Production:
    lhs: Ident
    alternatives: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class GrammarDecl:
    name: Ident
    productions: tuple[Production, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Setting:
    key: Ident
    value: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SynthDecl:
    name: Ident
    grammar: Ident
    settings: tuple[Setting, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)

    def setting(self, key: str) -> Setting | None:
        """The setting named `key`, if present."""
        for s in self.settings:
            if s.key.name == key:
                return s
        return None


@dataclass(frozen=True, slots=True)
class PropertyDecl:
    name: Ident
    claim: Call
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ConceptTarget:
    """`for concept SET.NAME`: the cams explain concept NAME's probe logit in concept set SET."""

    concepts: Ident
    concept: Ident
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Evaluate:
    cams: tuple[Ident, ...]
    model: Ident
    data: Ident
    metrics: tuple[Ident, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    concept: ConceptTarget | None = None


@dataclass(frozen=True, slots=True)
class Check:
    properties: tuple[Ident, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Export:
    cam: Ident
    path: String
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ConceptsDecl:
    """`concepts NAME = source(...)`: a named concept set (annotations, probes or clip)."""

    name: Ident
    source: Call
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MonitorDecl:
    """`monitor NAME = concept_monitor(...)`: a runtime monitor over a concept set."""

    name: Ident
    source: Call
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Heatmaps:
    """`heatmaps CONCEPTS on MODEL, DATA`: semantic and differential heatmaps and fault localisation."""

    concepts: Ident
    model: Ident
    data: Ident
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Watch:
    """`monitor NAME on DATA`: evaluate a monitor against MSP and energy on DATA (and PGD examples)."""

    monitor: Ident
    data: Ident
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


Decl: TypeAlias = (
    Import
    | ModelDecl
    | DataDecl
    | CamDecl
    | MetricDecl
    | GrammarDecl
    | SynthDecl
    | PropertyDecl
    | ConceptsDecl
    | MonitorDecl
)
Action: TypeAlias = Evaluate | Check | Export | Heatmaps | Watch
Stmt: TypeAlias = Decl | Action


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed file (or REPL input): its statements in order."""

    statements: tuple[Stmt, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


def _grammar_words() -> tuple[frozenset[str], tuple[str, ...]]:
    """The reserved words and the statement-opening words, read from `grammars/camlang.lark`."""
    text = grammar_path().read_text(encoding="utf-8")
    words = frozenset(re.findall(r'"([a-z_]+)"', text))
    openers = tuple(re.findall(r'^\w+_(?:stmt|decl):\s*"(\w+)"', text, re.MULTILINE))
    return words, openers


#: Every word literal of the grammar (a name may not be one), and the words that open a statement.
KEYWORDS, STATEMENT_KEYWORDS = _grammar_words()
